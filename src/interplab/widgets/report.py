"""Self-contained HTML reports with static widget snapshots, readable offline.

The widget state is written in the standard Jupyter embedding format by ``ipywidgets.embed``
(with ``drop_defaults=False``: an anywidget's ``_esm`` and ``_css`` are trait defaults and would
otherwise be dropped). ``embed_minimal_html`` itself loads the widget manager and require.js from
CDNs, so such a page stays blank offline; here the page carries interplab's own small runtime
(``static/report.js``) that renders the same state without any download.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets
import pandas as pd
from ipywidgets.embed import dependency_state, escape_script

from .base import STATIC, BundleMissingError

__all__ = ["Section", "write_report"]


@dataclass
class Section:
    """One part of a report: a title, paragraphs of plain text, widgets and tables, in that order."""

    title: str
    text: list[str] = field(default_factory=list)
    widgets: list[ipywidgets.DOMWidget] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    error: str | None = None  # set when the section could not be computed


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
:root {{
  --jp-layout-color0: #ffffff; --jp-layout-color1: #ffffff; --jp-layout-color2: #eeeeee;
  --jp-layout-color3: #bdbdbd; --jp-border-color1: #bdbdbd; --jp-border-color2: #e0e0e0;
  --jp-border-color3: #eeeeee; --jp-content-font-color1: rgba(0, 0, 0, 0.87);
  --jp-content-font-color2: rgba(0, 0, 0, 0.54); --jp-ui-font-color1: rgba(0, 0, 0, 0.87);
  --jp-ui-font-color2: rgba(0, 0, 0, 0.54); --jp-brand-color1: #1976d2; --jp-error-color1: #d32f2f;
  --jp-error-color3: #ffcdd2;
  --jp-ui-font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
  --jp-code-font-family: Menlo, Consolas, "DejaVu Sans Mono", monospace; --jp-code-font-size: 13px;
}}
@media (prefers-color-scheme: dark) {{
  :root {{
    --jp-layout-color0: #111111; --jp-layout-color1: #212121; --jp-layout-color2: #424242;
    --jp-layout-color3: #616161; --jp-border-color1: #616161; --jp-border-color2: #424242;
    --jp-border-color3: #333333; --jp-content-font-color1: rgba(255, 255, 255, 1);
    --jp-content-font-color2: rgba(255, 255, 255, 0.7); --jp-ui-font-color1: rgba(255, 255, 255, 0.87);
    --jp-ui-font-color2: rgba(255, 255, 255, 0.54); --jp-brand-color1: #42a5f5; --jp-error-color1: #ef5350;
    --jp-error-color3: #5c1f1f;
  }}
}}
body {{ margin: 0 auto; max-width: 1100px; padding: 24px; background: var(--jp-layout-color0);
  color: var(--jp-content-font-color1); font-family: var(--jp-ui-font-family); line-height: 1.5; }}
section {{ margin: 32px 0; }}
h1 {{ font-weight: 600; }}
h2 {{ border-bottom: 1px solid var(--jp-border-color2); padding-bottom: 4px; }}
table.il-table {{ border-collapse: collapse; margin: 12px 0; font-size: 13px; }}
table.il-table th, table.il-table td {{ padding: 2px 10px; border-bottom: 1px solid var(--jp-border-color2);
  text-align: right; }}
table.il-table th {{ font-weight: 600; }}
.il-report-note, .il-report-meta {{ color: var(--jp-content-font-color2); }}
.il-report-error {{ border-left: 4px solid var(--jp-error-color1); padding: 6px 10px;
  background: var(--jp-error-color3); white-space: pre-wrap; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="il-report-meta">{meta}</p>
{sections}
<script type="application/vnd.jupyter.widget-state+json">
{state}
</script>
<script type="module">
{runtime}
</script>
</body>
</html>
"""


def _view_tag(widget: ipywidgets.DOMWidget) -> str:
    spec = json.dumps(widget.get_view_spec())
    return f'<script type="application/vnd.jupyter.widget-view+json">{escape_script(spec)}</script>'


def _section_html(section: Section) -> str:
    parts = [f"<section>\n<h2>{html.escape(section.title)}</h2>"]
    parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in section.text]
    if section.error:
        parts.append(f'<div class="il-report-error">{html.escape(section.error)}</div>')
    parts += [_view_tag(widget) for widget in section.widgets]
    parts += [table.to_html(classes="il-table", border=0, escape=True, float_format=lambda x: f"{x:.4g}")
              for table in section.tables]
    parts.append("</section>")
    return "\n".join(parts)


def write_report(path: str | Path, sections: list[Section], *, title: str = "interplab report",
                 meta: str = "") -> Path:
    """Write ``sections`` as one HTML file that shows its widgets without a kernel or a network."""
    runtime_file = STATIC / "report.js"
    if not runtime_file.is_file():
        raise BundleMissingError(f"the report runtime ({runtime_file}) is not built: run `make setup` "
                                 "(or `npm ci && npm run build`)")
    runtime = runtime_file.read_text()
    if re.search(r"</script|<!--", runtime, re.IGNORECASE):
        raise ValueError(f"{runtime_file} contains '</script' or '<!--' and cannot be inlined in a page")
    widgets = [w for s in sections for w in s.widgets]
    # what ipywidgets.embed.embed_data does, also for a report without widgets
    manager_state = ipywidgets.Widget.get_manager_state(widgets=[])
    manager_state["state"] = dependency_state(widgets, drop_defaults=False) if widgets else {}
    page = PAGE.format(
        title=html.escape(title),
        meta=html.escape(meta),
        sections="\n".join(_section_html(s) for s in sections),
        state=escape_script(json.dumps(manager_state)),
        runtime=runtime,
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out
