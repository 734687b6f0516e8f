// Builds the console into dist/ (or --out DIR): one JS and one CSS bundle
// named by content hash under assets/, plus index.html and the static files.
// The output is deterministic (same sources and lock file → same bytes):
// web/bundle_test.go rebuilds it and compares with the committed dist/.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { alias } from "./alias.mjs";

const webDir = path.dirname(fileURLToPath(import.meta.url));
const outArg = process.argv.indexOf("--out");
const outDir = path.resolve(outArg > 0 ? process.argv[outArg + 1] : path.join(webDir, "dist"));
// alias.mjs: the SDK from its TypeScript source, its dependencies from web/node_modules.
rmSync(outDir, { recursive: true, force: true });
mkdirSync(path.join(outDir, "assets"), { recursive: true });
const result = await esbuild.build({
  absWorkingDir: webDir,
  entryPoints: { app: "src/main.ts" },
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  outdir: path.join(outDir, "assets"),
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  metafile: true,
  legalComments: "eof",
  charset: "utf8",
  sourcemap: false,
  logLevel: "warning",
  alias,
});
const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const js = outputs.find((f) => f.endsWith(".js"));
const css = outputs.find((f) => f.endsWith(".css"));
if (!js || !css) throw new Error(`build produced ${outputs.join(", ")}`);
cpSync(path.join(webDir, "static"), outDir, { recursive: true });
const html = readFileSync(path.join(webDir, "src", "index.html"), "utf8")
  .replaceAll("{{app.js}}", `/assets/${js}`)
  .replaceAll("{{app.css}}", `/assets/${css}`);
writeFileSync(path.join(outDir, "index.html"), html);
// A manifest of every file's SHA-256 makes staleness diffs readable.
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(d, e.name);
    if (e.isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(outDir);
for (const f of files) {
  const sum = createHash("sha256").update(readFileSync(f)).digest("hex").slice(0, 16);
  console.log(`${path.relative(outDir, f)} ${readFileSync(f).length} ${sum}`);
}
