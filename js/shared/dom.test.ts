import { describe, expect, it } from "vitest";
import { h, replaceChildren, setAttributes } from "./dom";

const EVIL = "<img src=x onerror=alert(1)>";

describe("dom builders", () => {
  it("puts strings in as text, never as markup", () => {
    const el = h("div", { attrs: { title: EVIL, "data-token": EVIL } }, EVIL, h("b", {}, EVIL));
    document.body.appendChild(el);
    expect(el.querySelector("img")).toBeNull();
    expect(document.querySelectorAll("img")).toHaveLength(0);
    expect(el.textContent).toBe(EVIL + EVIL);
    expect(el.getAttribute("title")).toBe(EVIL);
    el.remove();
  });

  it("refuses event-handler attributes and script URLs", () => {
    const el = document.createElement("a");
    expect(() => setAttributes(el, { onclick: "alert(1)" })).toThrow(/refusing/);
    expect(() => setAttributes(el, { OnError: "x" })).toThrow(/refusing/);
    expect(() => setAttributes(el, { href: "javascript:alert(1)" })).toThrow(/scheme/);
    expect(() => setAttributes(el, { href: " JAVASCRIPT:alert(1)" })).toThrow(/scheme/);
    setAttributes(el, { href: "https://example.org/a", download: "x.png" });
    expect(el.getAttribute("href")).toBe("https://example.org/a");
  });

  it("skips null children and replaces content", () => {
    const el = h("p", {}, "a", null, false, undefined, 3);
    expect(el.textContent).toBe("a3");
    replaceChildren(el, EVIL);
    expect(el.childNodes).toHaveLength(1);
    expect(el.firstChild!.nodeType).toBe(Node.TEXT_NODE);
  });

  it("wires events through Props.on", () => {
    let clicks = 0;
    const b = h("button", { on: { click: () => clicks++ } }, "go");
    b.click();
    expect(clicks).toBe(1);
  });
});
