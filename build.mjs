// Bundles each front end, js/<name>/index.ts (a widget, or the report runtime), into src/interplab/static/<name>.js
// (+ .css when the widget imports CSS). anywidget loads these ES modules by path.
import * as esbuild from "esbuild";
import { readdirSync, existsSync } from "node:fs";

const widgets = readdirSync("js", { withFileTypes: true })
  .filter((d) => d.isDirectory() && d.name !== "shared" && existsSync(`js/${d.name}/index.ts`))
  .map((d) => d.name);

const options = {
  entryPoints: Object.fromEntries(widgets.map((w) => [w, `js/${w}/index.ts`])),
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: !process.argv.includes("--watch"),
  sourcemap: false,
  outdir: "src/interplab/static",
  logLevel: "warning",
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log("watching js/ ...");
} else {
  await esbuild.build(options);
}
