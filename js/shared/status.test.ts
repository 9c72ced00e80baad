import { describe, expect, it } from "vitest";
import { createFrame } from "./frame";
import { CommandError, Commands, KernelGoneError } from "./rpc";
import { DISCONNECTED, errorBanner, progressBar } from "./status";
import { MockModel, tick } from "./testing";

describe("error banner", () => {
  it("shows the kernel's error trait and clears it when dismissed", () => {
    const model = new MockModel({ error: null });
    const banner = errorBanner(model);
    expect(banner.el.hidden).toBe(true);
    model.set("error", { type: "RuntimeError", message: "<b>boom</b>", command: "_top_k", traceback: "Traceback: ..." });
    expect(banner.el.hidden).toBe(false);
    expect(banner.el.textContent).toContain("RuntimeError in _top_k: <b>boom</b>");
    expect(banner.el.querySelector("b")).toBeNull(); // the message is text
    expect(banner.el.querySelector("pre")!.textContent).toBe("Traceback: ...");
    banner.el.querySelector<HTMLButtonElement>(".il-error-close")!.click();
    expect(banner.el.hidden).toBe(true);
    expect(model.get("error")).toBeNull();
    expect(model.saves).toBe(1);
    banner.dispose();
    expect(model.listenerCount("change:error")).toBe(0);
  });

  it("shows browser-side errors without touching the trait, and ignores aborts", () => {
    const model = new MockModel({ error: null });
    const banner = errorBanner(model);
    banner.show(new DOMException("closed", "AbortError"));
    expect(banner.el.hidden).toBe(true);
    banner.show(new CommandError("ValueError", "bad position", "_top_k"));
    expect(banner.el.textContent).toContain("ValueError in _top_k: bad position");
    banner.el.querySelector<HTMLButtonElement>(".il-error-close")!.click();
    expect(model.saves).toBe(0);
  });
});

describe("progress bar", () => {
  it("follows the progress trait and pending commands", () => {
    const model = new MockModel({ progress: null });
    const commands = new Commands(model);
    const bar = progressBar(model, commands);
    expect(bar.el.classList.contains("il-idle")).toBe(true);
    model.set("progress", { label: "scanning", done: 3, total: 12 });
    expect(bar.el.classList.contains("il-idle")).toBe(false);
    expect(parseFloat(bar.el.querySelector<HTMLElement>(".il-progress-fill")!.style.width)).toBe(25);
    expect(bar.el.textContent).toBe("scanning 3/12");
    model.set("progress", { label: "thinking" });
    expect(bar.el.classList.contains("il-indeterminate")).toBe(true);
    model.set("progress", null);
    expect(bar.el.classList.contains("il-idle")).toBe(true);
    commands.invoke("x", {}).catch(() => undefined);
    expect(bar.el.classList.contains("il-idle")).toBe(false);
    expect(bar.el.textContent).toContain("waiting for the kernel");
    commands.dispose();
    bar.dispose();
  });
});

describe("a view whose kernel is gone", () => {
  it("says so at once when the kernel restarts, and stops waiting", async () => {
    const model = new MockModel({ error: null, progress: null });
    const el = document.createElement("div");
    document.body.appendChild(el);
    const frame = createFrame(model, el, "il-test");
    const pending = frame.commands.invoke("_run", {}).catch((e) => e);
    model.send = () => {
      throw new Error("Cannot send"); // the kernel restarts: its connections are gone ...
    };
    model.emit("comm_live_update"); // ... and the widget manager says the connection changed
    expect(await pending).toBeInstanceOf(KernelGoneError);
    const banner = el.querySelector<HTMLElement>(".il-error")!;
    expect(banner.hidden).toBe(false);
    expect(banner.textContent).toContain("Not connected: ");
    expect(banner.textContent).toContain("the kernel was restarted or shut down");
    expect(await frame.commands.invoke("_mark", {}).catch((e) => e)).toBeInstanceOf(KernelGoneError);
    frame.dispose();
    expect(model.listenerCount("comm_live_update")).toBe(0);
    el.remove();
  });

  it("says so from the start for a view rebuilt from saved widget state", async () => {
    const model = new MockModel({ error: null, progress: null });
    const el = document.createElement("div");
    el.className = DISCONNECTED;
    const frame = createFrame(model, el, "il-test");
    expect(frame.commands.gone).toBe(true);
    expect(el.querySelector<HTMLElement>(".il-error")!.textContent).toContain("saved widget state");
    frame.dispose();
  });

  it("notices the class on a view that is marked later", async () => {
    const model = new MockModel({ error: null, progress: null });
    const el = document.createElement("div");
    const frame = createFrame(model, el, "il-test");
    el.classList.add(DISCONNECTED);
    await tick(5);
    expect(frame.commands.gone).toBe(true);
    frame.dispose();
  });

  it("leaves a connected view alone", async () => {
    const model = new MockModel({ error: null, progress: null });
    const el = document.createElement("div");
    const frame = createFrame(model, el, "il-test");
    model.emit("comm_live_update"); // sending still works: the kernel is there
    await tick(5);
    expect(model.sent.map((m) => m.content)).toEqual([{ kind: "interplab-probe" }]);
    expect(frame.commands.gone).toBe(false);
    expect(el.querySelector<HTMLElement>(".il-error")!.hidden).toBe(true);
    frame.dispose();
  });
});
