"""Is every widget readable in the theme it is shown in? Text contrast computed in the page.

``contrast_failures(page, selector)`` checks every visible piece of text inside the elements that
match ``selector`` (e.g. ``".il-root, .il-tooltip:not([hidden])"``): its colour, with the
opacity of the element and its ancestors, against the background actually behind it (the first
opaque background up the tree, semi-transparent ones blended in), by the WCAG 2 contrast ratio.
``theme_failures(page, selector)`` checks the theme colours a widget draws canvas text with
(``--jp-content-font-color1/2`` on ``--jp-layout-color0``, as ``js/shared/theme.ts`` reads them),
which the DOM check cannot see. Both return descriptions of what fails; an empty list passes.
Any widget's browser test can use them, in JupyterLab Light or Dark (see ``Lab.theme``).
"""

from __future__ import annotations

#: WCAG 2 AA for body text
MINIMUM = 4.5

_COLOUR_JS = """
const parse = (css) => {
  const probe = document.createElement('span');
  probe.style.color = css;
  document.body.appendChild(probe);
  const value = getComputedStyle(probe).color;
  probe.remove();
  const rgb = value.match(/rgba?\\(([^)]+)\\)/);  // rgb(r, g, b) / rgba(r, g, b, a)
  const srgb = value.match(/color\\(srgb ([^)]+)\\)/);  // what color-mix() computes to: 0..1 channels
  if (!rgb && !srgb) throw new Error('readable.py cannot read the colour ' + value);
  const parts = (rgb || srgb)[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
  const scale = rgb ? 1 : 255;
  return [parts[0] * scale, parts[1] * scale, parts[2] * scale, parts.length > 3 ? parts[3] : 1];
};
const over = (top, bottom) => {  // top (with alpha) composited over an opaque bottom
  const a = top[3];
  return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
};
const luminance = (c) => {
  const lin = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
};
const ratio = (a, b) => {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
};
const backgroundOf = (el) => {
  const layers = [];
  for (let node = el; node; node = node.parentElement) {
    const bg = parse(getComputedStyle(node).backgroundColor);
    if (bg && bg[3] > 0) {
      layers.push(bg);
      if (bg[3] >= 1) break;
    }
  }
  let colour = [255, 255, 255, 1];  // the page under everything
  for (const layer of layers.reverse()) colour = over(layer, colour);
  return colour;
};
const opacityOf = (el) => {
  let o = 1;
  for (let node = el; node; node = node.parentElement) o *= Number(getComputedStyle(node).opacity || 1);
  return o;
};
const hex = (c) => '#' + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
"""

_TEXT_JS = _COLOUR_JS + """
([selector, minimum]) => {
  const failures = [];
  for (const root of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.textContent.trim();
      const el = node.parentElement;
      if (!text || !el || el.closest('[hidden]') || !el.getClientRects().length) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || style.display === 'none') continue;
      const bg = backgroundOf(el);
      const fg = parse(style.color);
      const seen = over([fg[0], fg[1], fg[2], fg[3] * opacityOf(el)], bg);
      const r = ratio(seen, bg);
      if (r < minimum) {
        const where = `<${el.tagName.toLowerCase()} class="${el.className}">`;
        failures.push(`${JSON.stringify(text.slice(0, 40))} in ${where}: ` +
                      `${hex(seen)} on ${hex(bg)}, contrast ${r.toFixed(2)} < ${minimum}`);
      }
    }
  }
  return failures;
}
"""

_THEME_JS = _COLOUR_JS + """
([selector, minimum]) => {
  const failures = [];
  const root = document.querySelector(selector);
  if (!root) return [`nothing matches ${selector}`];
  const style = getComputedStyle(root);
  const variable = (name) => parse(style.getPropertyValue(name).trim() || 'transparent');
  const bg = over(variable('--jp-layout-color0'), [255, 255, 255, 1]);
  for (const name of ['--jp-content-font-color1', '--jp-content-font-color2']) {
    const fg = over(variable(name), bg);
    const r = ratio(fg, bg);
    if (r < minimum) {
      failures.push(`canvas text ${name} ${hex(fg)} on ${hex(bg)}: contrast ${r.toFixed(2)} < ${minimum}`);
    }
  }
  return failures;
}
"""


def contrast_failures(page, selector: str = ".il-root, .il-tooltip:not([hidden])", minimum: float = MINIMUM
                      ) -> list[str]:
    """Every visible text inside ``selector`` whose contrast with what is behind it is below ``minimum``."""
    return page.evaluate(_TEXT_JS, [selector, minimum])


def theme_failures(page, selector: str = ".il-root", minimum: float = MINIMUM) -> list[str]:
    """The theme's text colours for canvas drawing that are too faint on its background."""
    return page.evaluate(_THEME_JS, [selector, minimum])


def is_dark(page) -> bool:
    """Whether JupyterLab shows a dark theme now."""
    return page.evaluate("document.body.dataset.jpThemeLight") == "false"
