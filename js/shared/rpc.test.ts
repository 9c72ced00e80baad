import { describe, expect, it, vi } from "vitest";
import { CommandError, Commands, invoke, isAbort } from "./rpc";
import { MockModel, tick } from "./testing";

describe("invoke", () => {
  it("sends anywidget's command message and resolves with the reply and its buffers", async () => {
    const model = new MockModel();
    const payload = new Uint8Array([1, 2, 3]);
    const pending = invoke(model, "_top_k", { position: 2 }, { buffers: [payload] });
    const { content, buffers } = model.sent[0];
    expect(content).toMatchObject({ kind: "anywidget-command", name: "_top_k", msg: { position: 2 } });
    expect(typeof content.id).toBe("string");
    expect(buffers).toEqual([payload]);

    // replies to other calls are not ours
    model.emit("msg:custom", { id: "someone-else", kind: "anywidget-command-response", response: { result: 0 } }, []);
    const reply = new DataView(new ArrayBuffer(4));
    model.reply({ result: { answer: 42 } }, [reply]);
    await expect(pending).resolves.toEqual({ value: { answer: 42 }, buffers: [reply] });
    expect(model.listenerCount("msg:custom")).toBe(0);
  });

  it("throws the kernel's error as a CommandError", async () => {
    const model = new MockModel();
    const pending = invoke(model, "_top_k", {});
    model.reply({ error: { type: "ValueError", message: "position 9 is outside", traceback: "Traceback ..." } });
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toMatchObject({ type: "ValueError", message: "position 9 is outside", command: "_top_k" });
    expect(error.traceback).toBe("Traceback ...");
  });

  it("has no timeout of its own, and stops waiting when aborted", async () => {
    const model = new MockModel();
    const controller = new AbortController();
    vi.useFakeTimers();
    const pending = invoke(model, "slow", {}, { signal: controller.signal });
    let settled = false;
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    vi.advanceTimersByTime(10 * 60 * 1000); // anywidget's own invoke gives up after 3 s
    vi.useRealTimers();
    await tick(5);
    expect(settled).toBe(false);
    controller.abort();
    const error = await pending.catch((e) => e);
    expect(isAbort(error)).toBe(true);
    expect(model.listenerCount("msg:custom")).toBe(0);
    model.reply({ result: "late" }); // a late reply is ignored
  });

  it("rejects at once with an already aborted signal, sending nothing", async () => {
    const model = new MockModel();
    const controller = new AbortController();
    controller.abort();
    await expect(invoke(model, "x", {}, { signal: controller.signal })).rejects.toBeDefined();
    expect(model.sent).toHaveLength(0);
  });
});

describe("Commands", () => {
  it("counts pending calls and aborts them all on dispose", async () => {
    const model = new MockModel();
    const commands = new Commands(model);
    const counts: number[] = [];
    commands.onPending((n) => counts.push(n));
    const a = commands.invoke("a", {});
    const b = commands.invoke("b", {});
    expect(commands.pending).toBe(2);
    model.reply({ result: "b done" });
    await expect(b).resolves.toMatchObject({ value: "b done" });
    commands.dispose();
    expect(isAbort(await a.catch((e) => e))).toBe(true);
    expect(counts).toEqual([1, 2, 1]);
    expect(model.listenerCount("msg:custom")).toBe(0);
    expect(isAbort(await commands.invoke("c", {}).catch((e) => e))).toBe(true);
  });

  it("honours a caller's own signal too", async () => {
    const model = new MockModel();
    const commands = new Commands(model);
    const controller = new AbortController();
    const call = commands.invoke("a", {}, { signal: controller.signal });
    controller.abort();
    expect(isAbort(await call.catch((e) => e))).toBe(true);
    expect(commands.pending).toBe(0);
  });
});
