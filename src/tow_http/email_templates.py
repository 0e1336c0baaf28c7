"""The email templates (``templates/email/<name>.txt`` and ``<name>.html``) rendered with Jinja: the plain
text part is not escaped, the HTML part is (names are data, never markup)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

EMAIL_TEMPLATES = Path(__file__).resolve().parent / "templates" / "email"


class JinjaEmailTemplates:
    def __init__(self, directory: Path = EMAIL_TEMPLATES) -> None:
        self._env = Environment(loader=FileSystemLoader(directory), undefined=StrictUndefined,
                                autoescape=select_autoescape(enabled_extensions=("html",), default=False),
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)

    def render(self, name: str, context: Mapping[str, object]) -> tuple[str, str]:
        return (self._env.get_template(f"{name}.txt").render(context),
                self._env.get_template(f"{name}.html").render(context))
