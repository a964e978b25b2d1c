"""Email templates: Jinja2 in an immutable sandbox, strict about undefined variables.

A named template is a folder holding `subject.txt` and `body.txt` and/or `body.html`, looked up
first in `CONVEYOR_TEMPLATES_DIR`, then among the samples shipped in this package. Inline
parts (`subject`, `text`, `html`) are templates too and override the named template's.
Every failure a template can cause is a `PermanentError`: retrying renders the same thing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError, safe_range

from conveyor import PermanentError

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"
#: Files of a named template, by the part they render.
PART_FILES = {"subject": "subject.txt", "text": "body.txt", "html": "body.html"}
#: Rendered output past this is refused (a template loop can otherwise exhaust memory).
MAX_RENDERED_CHARS = 2_000_000
#: Sequence repetition (`'x' * n`) and powers are capped for the same reason.
MAX_REPEAT = 100_000
MAX_EXPONENT = 1_000
MAX_SUBJECT_CHARS = 998
#: `range()` calls of one render may produce this many numbers in total (nested loops).
MAX_RANGE_TOTAL = 1_000_000

_range_budget: ContextVar[list[int] | None] = ContextVar("range_budget", default=None)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message's rendered parts; at least one of text and html is set."""

    subject: str
    text: str | None
    html: str | None


def _budgeted_range(*args: int) -> range:
    """The sandbox's `range`, also capped in total across one render (nested loops)."""
    numbers = safe_range(*args)
    budget = _range_budget.get()
    if budget is not None:
        budget[0] -= len(numbers)
        if budget[0] < 0:
            raise SecurityError(f"template loops over more than {MAX_RANGE_TOTAL} numbers")
    return numbers


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, also refusing arithmetic that builds huge values and loops
    that run for too long."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = _budgeted_range

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large for a template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
                if sized and len(seq) * count > MAX_REPEAT:
                    raise SecurityError("repetition builds a value too large for a template")
        return super().call_binop(context, operator, left, right)


class Templates:
    """Named and inline email templates for one templates directory (thread-safe)."""

    def __init__(self, templates_dir: str | None = None) -> None:
        self.directories = [Path(templates_dir).expanduser()] if templates_dir else []
        self.directories.append(BUILTIN_TEMPLATES)
        loader = ChoiceLoader([FileSystemLoader(str(d)) for d in self.directories])
        options: dict[str, Any] = {
            "loader": loader,
            "undefined": StrictUndefined,
            # Block tags leave no blank lines behind: plain-text bodies read as written.
            "trim_blocks": True,
            "lstrip_blocks": True,
        }
        self._text = _Sandbox(autoescape=False, **options)
        self._html = _Sandbox(autoescape=True, **options)
        self._inline_lock = threading.Lock()
        self._inline: dict[tuple[str, str], Template] = {}

    # --- loading -------------------------------------------------------------------------

    def load(self, template: str | None, inline: Mapping[str, str | None]) -> dict[str, Template]:
        """Compile the parts of a message: named template files, overridden by inline parts."""
        parts: dict[str, Template] = {}
        if template is not None:
            parts.update(self._named(template))
        for part, source in inline.items():
            if source is not None:
                parts[part] = self._compile_inline(part, source)
        if "subject" not in parts:
            raise PermanentError(f"email template {template!r} has no subject.txt")
        if "text" not in parts and "html" not in parts:
            raise PermanentError(f"email template {template!r} has neither body.txt nor body.html")
        return parts

    def _named(self, name: str) -> dict[str, Template]:
        if not _NAME.fullmatch(name) or len(name) > 200:
            raise PermanentError(
                f"invalid template name {name!r}: use letters, digits, '_', '-', '.' and '/'"
            )
        # A named template is one folder: the first directory holding it supplies every part.
        folder = next((d / name for d in self.directories if (d / name).is_dir()), None)
        if folder is None:
            where = ", ".join(str(d) for d in self.directories)
            raise PermanentError(f"no email template named {name!r} (looked in {where})")
        found: dict[str, Template] = {}
        for part, filename in PART_FILES.items():
            if not (folder / filename).is_file():
                continue
            env = self._html if part == "html" else self._text
            try:
                found[part] = env.get_template(f"{name}/{filename}")
            except TemplateSyntaxError as exc:
                raise PermanentError(_syntax_message(exc, f"{name}/{filename}")) from None
        return found

    def _compile_inline(self, part: str, source: str) -> Template:
        key = (part, source)
        with self._inline_lock:
            cached = self._inline.get(key)
        if cached is not None:
            return cached
        env = self._html if part == "html" else self._text
        try:
            compiled = env.from_string(source)
        except TemplateSyntaxError as exc:
            raise PermanentError(_syntax_message(exc, f"inline {part}")) from None
        with self._inline_lock:
            # Campaigns compile the same few sources thousands of times; keep a bounded few.
            if len(self._inline) >= 256:
                self._inline.clear()
            self._inline[key] = compiled
        return compiled

    # --- rendering -----------------------------------------------------------------------

    def render(
        self,
        template: str | None,
        inline: Mapping[str, str | None],
        context: Mapping[str, Any],
    ) -> Rendered:
        """Render a message's parts; any template failure is a PermanentError naming it."""
        parts = self.load(template, inline)
        out = {part: render_part(compiled, part, context) for part, compiled in parts.items()}
        subject = out["subject"].strip()
        if "\r" in subject or "\n" in subject:
            raise PermanentError("the rendered subject contains a line break (CR or LF)")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise PermanentError(f"the rendered subject is over {MAX_SUBJECT_CHARS} characters")
        return Rendered(subject=subject, text=out.get("text"), html=out.get("html"))

    def render_string(self, source: str, context: Mapping[str, Any], what: str) -> str:
        """Render one small text template (such as an unsubscribe link)."""
        return render_part(self._compile_inline(what, source), what, context)


def render_part(template: Template, part: str, context: Mapping[str, Any]) -> str:
    """Render one compiled part, streaming so that an oversized output stops early."""
    chunks: list[str] = []
    size = 0
    budget = _range_budget.set([MAX_RANGE_TOTAL])
    try:
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise PermanentError(f"the {part} renders to over {MAX_RENDERED_CHARS} characters")
            chunks.append(chunk)
    except UndefinedError as exc:
        raise PermanentError(f"template variable missing in {part}: {exc.message}") from None
    except SecurityError as exc:
        raise PermanentError(f"template refused by the sandbox in {part}: {exc}") from None
    except TemplateError as exc:
        raise PermanentError(f"template error in {part}: {exc}") from None
    except PermanentError:
        raise
    except Exception as exc:
        # A template bug (division by zero, a range too big): rendering again cannot help.
        raise PermanentError(f"template failed in {part}: {type(exc).__name__}: {exc}") from None
    finally:
        _range_budget.reset(budget)
    return "".join(chunks)


def _syntax_message(exc: TemplateSyntaxError, where: str) -> str:
    return f"template syntax error in {where}, line {exc.lineno}: {exc.message}"


@lru_cache(maxsize=8)
def templates_for(templates_dir: str | None) -> Templates:
    """One `Templates` per directory and process, so compiled templates are shared."""
    return Templates(templates_dir)
