// Drawing the explorer through the shared Painter (canvas on screen, canvas or SVG on export):
// the node grid, the edge column with its arcs, and the method scatter.

import type { Painter } from "../shared/painter";
import { diverging, type Scale, type Theme } from "../shared/theme";
import {
  componentOf,
  EDGE_COMPONENTS,
  type EdgeGraph,
  formatScore,
  type Layout,
  maxAbs,
  type Nodes,
  nodeCentre,
  rowY,
} from "./graph";

export const EDGE_BUCKETS = 6;

export interface GraphState {
  layout: Layout;
  nodes: Nodes;
  scores: ArrayLike<number>;
  kept: Uint8Array;
  ablated: Set<number>;
  labels: string[];
  edges: EdgeGraph | null;
  keptEdges: number[];
  theme: Theme;
}

export function edgeColours(theme: Theme): { positive: string; negative: string } {
  const scale = diverging(theme, 1);
  return { positive: scale(1)!, negative: scale(-1)! };
}

/** A string cut to `width` pixels with an ellipsis. */
export function fit(p: Painter, value: string, width: number, size: number, family: string): string {
  const style = { size, family };
  if (p.measureText(value, style) <= width) return value;
  let cut = value;
  while (cut.length > 1 && p.measureText(`${cut}…`, style) > width) cut = cut.slice(0, -1);
  return `${cut}…`;
}

/**
 * Edge arcs grouped into one path per sign and width bucket: thousands of edges are a dozen
 * strokes. Returns [sign, bucket, path] triples.
 */
export function edgePaths(layout: Layout, edges: EdgeGraph, keep: number[]): { positive: boolean; bucket: number; d: string }[] {
  const limit = maxAbs(keep.map((e) => edges.score[e]));
  const groups = new Map<string, string[]>();
  for (const e of keep) {
    const s = edges.score[e];
    if (!Number.isFinite(s) || limit === 0) continue;
    const bucket = Math.min(EDGE_BUCKETS - 1, Math.floor((Math.abs(s) / limit) * EDGE_BUCKETS));
    const key = `${s >= 0 ? "+" : "-"}${bucket}`;
    const y1 = layout.edgeY[edges.source[e]];
    const y2 = layout.edgeY[edges.target[e]];
    const bulge = Math.min(110, 10 + 0.45 * Math.abs(y1 - y2));
    const x = layout.edgeX;
    const d = `M${x.toFixed(1)} ${y1.toFixed(1)}C${(x + bulge).toFixed(1)} ${y1.toFixed(1)} ${(x + bulge).toFixed(1)} ${y2.toFixed(1)} ${x.toFixed(1)} ${y2.toFixed(1)}`;
    let list = groups.get(key);
    if (!list) groups.set(key, (list = []));
    list.push(d);
  }
  return [...groups].map(([key, parts]) => ({ positive: key[0] === "+", bucket: Number(key.slice(1)), d: parts.join("") }));
}

/**
 * Colours saturate at the largest |score| of the circuit nodes (attn, mlp, heads): resid nodes,
 * which carry everything before them, would otherwise leave every other node pale.
 */
// Pan and zoom redraw the same arcs: keep the paths of the last (layout, edges, kept set).
const pathCache = new WeakMap<number[], { layout: Layout; edges: EdgeGraph; paths: ReturnType<typeof edgePaths> }>();

function cachedEdgePaths(layout: Layout, edges: EdgeGraph, keep: number[]) {
  const hit = pathCache.get(keep);
  if (hit && hit.layout === layout && hit.edges === edges) return hit.paths;
  const paths = edgePaths(layout, edges, keep);
  pathCache.set(keep, { layout, edges, paths });
  return paths;
}

export function nodeScale(theme: Theme, nodes: Nodes, scores: ArrayLike<number>): Scale {
  let limit = 0;
  for (let i = 0; i < nodes.length; i++) {
    if (componentOf(nodes, i) !== "resid" && Number.isFinite(scores[i])) limit = Math.max(limit, Math.abs(scores[i]));
  }
  return diverging(theme, limit || maxAbs(scores));
}

export function drawGraph(p: Painter, s: GraphState): void {
  const { layout, nodes, scores, kept, theme } = s;
  const scale = nodeScale(theme, nodes, scores);
  const small = Math.min(11, theme.fontSize);
  const muted = { fill: theme.muted, family: theme.font, size: small, baseline: "middle" as const };
  const layerH = layout.rows.length * layout.rowH + 10;
  const gridW = layout.nPositions * layout.colW;

  // layer bands and labels
  for (let l = 0; l < layout.nLayers; l++) {
    const top = layout.bottom - (l + 1) * layerH;
    if (l % 2 === 1) p.rect(layout.left, top, gridW, layerH, { fill: theme.surface });
    p.text(4, top + layerH / 2, `layer ${l}`, { ...muted, fill: theme.foreground });
    if (layout.rowH >= 9) {
      for (let r = 0; r < layout.rows.length; r++) {
        const name = layout.rows[r].replace("head ", "h");
        p.text(layout.left - 4, rowY(layout, l, r), name, { ...muted, size: Math.min(small - 2, layout.rowH - 1), align: "right" });
      }
    }
  }

  // nodes: pruned ones faint, kept ones outlined, ablated ones crossed
  const w = Math.max(4, layout.colW - 4);
  const hgt = Math.max(3, layout.rowH - 3);
  for (let i = 0; i < nodes.length; i++) {
    const [cx, cy] = nodeCentre(layout, nodes, i);
    const fill = scale(scores[i]) ?? theme.background;
    const on = kept[i] === 1;
    p.rect(cx - w / 2, cy - hgt / 2, w, hgt, {
      fill,
      stroke: on ? theme.foreground : null,
      lineWidth: 1,
      opacity: on ? 1 : 0.28,
      radius: 2,
    });
  }
  for (const i of s.ablated) {
    const [cx, cy] = nodeCentre(layout, nodes, i);
    const d = `M${cx - w / 2} ${cy - hgt / 2}L${cx + w / 2} ${cy + hgt / 2}M${cx - w / 2} ${cy + hgt / 2}L${cx + w / 2} ${cy - hgt / 2}`;
    p.path(d, { stroke: theme.error, lineWidth: 2 });
  }

  // tokens along the bottom
  for (let pos = 0; pos < layout.nPositions; pos++) {
    const x = layout.left + (pos + 0.5) * layout.colW;
    const token = fit(p, s.labels[pos] ?? "", layout.colW - 2, small, theme.font);
    p.text(x, layout.bottom + 14, token, { ...muted, fill: theme.foreground, align: "center" });
    p.text(x, layout.bottom + 28, String(pos), { ...muted, size: small - 2, align: "center" });
  }

  // the edge column: layer-level nodes, arcs to the right
  if (s.edges) {
    const edges = s.edges;
    const colours = edgeColours(theme);
    p.text(layout.edgeX, 9, `edges (${edges.method})`, { ...muted, align: "center" });
    for (const path of cachedEdgePaths(layout, edges, s.keptEdges)) {
      p.path(path.d, {
        stroke: path.positive ? colours.positive : colours.negative,
        lineWidth: 0.6 + path.bucket * 0.8,
        opacity: 0.35 + (0.6 * path.bucket) / (EDGE_BUCKETS - 1),
      });
    }
    for (let i = 0; i < edges.nodes.length; i++) {
      const y = layout.edgeY[i];
      p.circle(layout.edgeX, y, 3.5, { fill: theme.foreground });
      const component = EDGE_COMPONENTS[edges.component[i]];
      if (component === "embed" || component === "logits") {
        p.text(layout.edgeX - 8, y, component, { ...muted, align: "right" });
      }
    }
  }
}

export interface ScatterState {
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  nodes: Nodes;
  xLabel: string;
  yLabel: string;
  r: number;
  theme: Theme;
  size: number;
}

const COMPONENT_COLOURS: Record<string, string> = { resid: "#7f7f7f", attn: "#1f77b4", head: "#1f77b4", mlp: "#ff7f0e" };

export function drawScatter(p: Painter, s: ScatterState): void {
  const { theme, size } = s;
  const pad = 34;
  const inner = size - pad - 10;
  const lim = Math.max(maxAbs(s.x), maxAbs(s.y)) || 1;
  const px = (v: number) => pad + ((v + lim) / (2 * lim)) * inner;
  const py = (v: number) => 10 + inner - ((v + lim) / (2 * lim)) * inner;
  const small = Math.min(11, theme.fontSize);
  const muted = { fill: theme.muted, family: theme.font, size: small };
  p.rect(pad, 10, inner, inner, { stroke: theme.border, fill: null });
  p.line(px(-lim), py(-lim), px(lim), py(lim), { stroke: theme.border, dash: [3, 3] });
  p.line(px(0), 10, px(0), 10 + inner, { stroke: theme.border, lineWidth: 0.5 });
  p.line(pad, py(0), pad + inner, py(0), { stroke: theme.border, lineWidth: 0.5 });
  for (let i = 0; i < s.x.length; i++) {
    if (!Number.isFinite(s.x[i]) || !Number.isFinite(s.y[i])) continue;
    p.circle(px(s.x[i]), py(s.y[i]), 2.2, { fill: COMPONENT_COLOURS[componentOf(s.nodes, i)] ?? theme.foreground, opacity: 0.75 });
  }
  p.text(pad + inner / 2, size - 4, s.xLabel, { ...muted, align: "center", baseline: "bottom" });
  p.text(4, 6, s.yLabel, { ...muted, baseline: "top" });
  p.text(pad + 6, 24, `r = ${Number.isFinite(s.r) ? s.r.toFixed(3) : "–"}`, { ...muted, fill: theme.foreground, weight: "bold", baseline: "middle" });
  p.text(pad + inner - 4, 10 + inner - 8, `±${formatScore(lim)}`, { ...muted, align: "right", baseline: "middle" });
}
