"""Email templates: the sandbox, strict variables, autoescape, named template lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import PermanentError
from conveyor.handlers.email.rendering import Templates

INLINE = {"subject": None, "text": None, "html": None}


def render(source: dict[str, str], context: dict | None = None, templates_dir: str | None = None):
    return Templates(templates_dir).render(None, {**INLINE, **source}, context or {})


def test_inline_parts_render_and_html_is_escaped() -> None:
    out = render(
        {"subject": "Hi {{ name }}", "text": "T {{ name }}", "html": "<p>{{ name }}</p>"},
        {"name": "<b>Ann</b>"},
    )
    assert out.subject == "Hi <b>Ann</b>"
    assert out.text == "T <b>Ann</b>"
    assert out.html == "<p>&lt;b&gt;Ann&lt;/b&gt;</p>"


def test_missing_variable_names_it() -> None:
    with pytest.raises(PermanentError, match=r"missing in text: 'first_name' is undefined"):
        render({"subject": "s", "text": "Dear {{ first_name }}"})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ self.__init__.__globals__ }}",
        "{{ config.items() }}",
        "{% set x = [] %}{{ x.append(1) }}",
        "{{ {}.update(a=1) }}",
        "{{ 'a' * 200000 }}",
        "{{ 9 ** 99999 }}",
        "{{ range(10**8) | list }}",
        "{% for i in range(99999) %}{% for j in range(99999) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    ],
)
def test_sandbox_refuses_attacks(source: str) -> None:
    with pytest.raises(PermanentError):
        render({"subject": "s", "text": source})


def test_subject_with_a_line_break_is_refused() -> None:
    with pytest.raises(PermanentError, match="line break"):
        render({"subject": "Hi {{ name }}", "text": "x"}, {"name": "a\nBcc: x@example.test"})


def test_syntax_error_names_the_part_and_line() -> None:
    with pytest.raises(PermanentError, match=r"syntax error in inline html, line 2"):
        render({"subject": "s", "html": "<p>\n{% if %}</p>"})


def test_named_templates_user_folder_first_then_samples(tmp_path: Path) -> None:
    (tmp_path / "welcome").mkdir()
    (tmp_path / "welcome" / "subject.txt").write_text("Custom {{ name }}\n")
    (tmp_path / "welcome" / "body.txt").write_text("Body\n")
    templates = Templates(str(tmp_path))
    custom = templates.render("welcome", INLINE, {"name": "Ann"})
    assert (custom.subject, custom.text, custom.html) == ("Custom Ann", "Body", None)
    sample = templates.render(
        "newsletter",
        INLINE,
        {"title": "T", "intro": "I", "unsubscribe_url": "mailto:u@example.test"},
    )
    assert sample.subject == "T"
    assert sample.html is not None and "<h1>T</h1>" in sample.html


def test_builtin_samples_render() -> None:
    out = Templates().render("welcome", INLINE, {"name": "Ann", "login_url": "https://x.test/"})
    assert out.subject == "Welcome to Conveyor, Ann!"
    assert "Sign in here: https://x.test/" in (out.text or "")
    assert '<a href="https://x.test/">' in (out.html or "")


@pytest.mark.parametrize("name", ["../etc", "/etc/passwd", "a/../../b", "nope", "", "a\\b"])
def test_unknown_or_unsafe_template_names(name: str) -> None:
    with pytest.raises(PermanentError, match="template"):
        Templates().render(name, INLINE, {})


def test_template_without_a_body_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "subject.txt").write_text("S")
    with pytest.raises(PermanentError, match=r"neither body\.txt nor body\.html"):
        Templates(str(tmp_path)).render("empty", INLINE, {})


def test_loops_within_the_budget_render() -> None:
    out = render({"subject": "s", "text": "{% for i in range(3) %}{{ i }}{% endfor %}"})
    assert out.text == "012"
