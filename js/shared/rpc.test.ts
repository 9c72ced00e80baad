import { describe, expect, it, vi } from "vitest";
import { CommandError, Commands, invoke, isAbort, KernelGoneError, NoAnswerError } from "./rpc";
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

  it("waits as long as the kernel shows signs of life, and stops waiting when aborted", async () => {
    const model = new MockModel();
    const controller = new AbortController();
    vi.useFakeTimers();
    let life = Date.now();
    const pending = invoke(model, "slow", {}, { signal: controller.signal, patience: 60_000, heard: () => life });
    let settled = false;
    pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (let minute = 0; minute < 10; minute++) {
      vi.advanceTimersByTime(50_000); // anywidget's own invoke gives up after 3 s
      life = Date.now(); // progress from the kernel
    }
    vi.useRealTimers();
    await tick(5);
    expect(settled).toBe(false);
    controller.abort();
    const error = await pending.catch((e) => e);
    expect(isAbort(error)).toBe(true);
    expect(model.listenerCount("msg:custom")).toBe(0);
    model.reply({ result: "late" }); // a late reply is ignored
  });

  it("gives up after its patience of silence, saying so", async () => {
    const model = new MockModel();
    vi.useFakeTimers();
    const pending = invoke(model, "_run", {}, { patience: 120_000 });
    const caught = pending.catch((e) => e);
    vi.advanceTimersByTime(119_000);
    vi.advanceTimersByTime(2_000);
    vi.useRealTimers();
    const error = await caught;
    expect(error).toBeInstanceOf(NoAnswerError);
    expect(error.message).toContain("no answer from the kernel to _run for 120 s");
    expect(model.listenerCount("msg:custom")).toBe(0);
  });

  it("fails at once when the kernel is gone (JupyterLab's send throws)", async () => {
    const model = new MockModel();
    model.send = () => {
      throw new Error("Cannot send");
    };
    const error = await invoke(model, "_mark", {}).catch((e) => e);
    expect(error).toBeInstanceOf(KernelGoneError);
    expect(error.message).toContain("the kernel was restarted or shut down");
    expect(error.message).toContain("Run the cell again");
    expect(model.listenerCount("msg:custom")).toBe(0);
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

describe("Commands and a lost kernel", () => {
  it("rejects pending and later calls once disconnected, without sending", async () => {
    const model = new MockModel();
    const commands = new Commands(model);
    const pending = commands.invoke("a", {});
    commands.disconnect();
    expect(await pending.catch((e) => e)).toBeInstanceOf(KernelGoneError);
    const sent = model.sent.length;
    expect(await commands.invoke("b", {}).catch((e) => e)).toBeInstanceOf(KernelGoneError);
    expect(model.sent).toHaveLength(sent);
    expect(commands.gone && commands.pending === 0).toBe(true);
  });

  it("counts progress and messages from the kernel as signs of life for every pending call", async () => {
    const model = new MockModel({ progress: null });
    vi.useFakeTimers();
    const commands = new Commands(model, 30_000);
    let settled = false;
    const call = commands.invoke("_rescan", {}).finally(() => (settled = true));
    for (let i = 0; i < 8; i++) {
      vi.advanceTimersByTime(20_000);
      model.set("progress", { label: "scan", done: i, total: 8 });
    }
    await Promise.resolve();
    expect(settled).toBe(false);
    vi.advanceTimersByTime(31_000);
    vi.useRealTimers();
    expect(await call.catch((e) => e)).toBeInstanceOf(NoAnswerError);
    commands.dispose();
    expect(model.listenerCount("change:progress")).toBe(0);
  });
});
