// Baseline for bench/tokenizer: encode a text file with @lenml/tokenizers
// (a dependency-free port of transformers.js tokenizers) and print MB/s.
//
// usage: node lenml.mjs TOKENIZER_JSON[.gz] TEXT [OUT_IDS] [RUNS]
// Node runs JavaScript on one thread; run it under `taskset -c 0` for a
// strict one-core figure.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";

const [tokPath, textPath, outPath, runsArg] = process.argv.slice(2);
if (!tokPath || !textPath) {
  console.error("usage: node lenml.mjs TOKENIZER_JSON[.gz] TEXT [OUT_IDS] [RUNS]");
  process.exit(2);
}
let raw = readFileSync(tokPath);
if (raw[0] === 0x1f && raw[1] === 0x8b) raw = gunzipSync(raw);
const cfgPath = join(dirname(tokPath), "tokenizer_config.json");
const tokenizerConfig = existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : {};
const t0 = performance.now();
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON: JSON.parse(raw.toString("utf8")), tokenizerConfig });
const loadMs = performance.now() - t0;
const text = readFileSync(textPath, "utf8");
const mb = Buffer.byteLength(text, "utf8") / 1e6;
const runs = Number(runsArg || 3);
let ids = null;
let best = Infinity;
let bestCPU = Infinity;
for (let r = 0; r < runs; r++) {
  const c = process.cpuUsage();
  const s = performance.now();
  ids = tok.encode(text, { add_special_tokens: false });
  const sec = (performance.now() - s) / 1000;
  const cu = process.cpuUsage(c);
  const cpu = (cu.user + cu.system) / 1e6;
  best = Math.min(best, sec);
  bestCPU = Math.min(bestCPU, cpu);
  console.log(`lenml run ${r + 1}: wall ${sec.toFixed(3)} s (${(mb / sec).toFixed(2)} MB/s), cpu ${cpu.toFixed(3)} s (${(mb / cpu).toFixed(2)} MB/s)`);
}
console.log(`lenml: load ${loadMs.toFixed(0)} ms, ${mb.toFixed(2)} MB -> ${ids.length} ids, best wall ${(mb / best).toFixed(2)} MB/s, best cpu ${(mb / bestCPU).toFixed(2)} MB/s`);
console.log(`RESULT lenml wall ${(mb / best).toFixed(3)} cpu ${(mb / bestCPU).toFixed(3)}`);
if (outPath) writeFileSync(outPath, ids.join("\n") + "\n");
