// The Node.js side of bench/apply.sh: the official openai SDK (npm
// "openai") making the same chat completions as agora, at the same
// concurrency, against the same stand-in server — a bare loop of N
// requests from C async workers replaying the requests agora sends
// (written by `driver spec -prompts`).
//
//   AGORA_BENCH_KEY=… node load.mjs --url URL --prompts FILE --n N --concurrency C [--max-tokens 1024]
//
// The SDK is used as its README shows, with retries off (the server
// injects no faults) and its default fetch (Node's built-in undici), which
// opens as many keep-alive connections as there are requests in flight.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import OpenAI from "openai";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    prompts: { type: "string" },
    n: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "64" },
    "max-tokens": { type: "string", default: "1024" },
    model: { type: "string", default: "test-model" },
  },
});
if (!args.url || !args.prompts) {
  console.error("usage: node load.mjs --url URL --prompts FILE --n N --concurrency C");
  process.exit(2);
}
const n = Number(args.n);
const concurrency = Number(args.concurrency);
const maxTokens = Number(args["max-tokens"]);
const requests = readFileSync(args.prompts, "utf8")
  .split("\n")
  .filter((l) => l !== "")
  .map((l) => JSON.parse(l).messages);

const sdkVersion = JSON.parse(
  readFileSync(new URL("./node_modules/openai/package.json", import.meta.url), "utf8"),
).version;

const client = new OpenAI({
  apiKey: process.env.AGORA_BENCH_KEY,
  baseURL: args.url,
  maxRetries: 0,
  timeout: 120_000,
});

let next = 0;
let failed = 0;
let completionTokens = 0;
async function worker() {
  for (;;) {
    const i = next++;
    if (i >= n) return;
    try {
      const res = await client.chat.completions.create({
        model: args.model,
        messages: requests[i % requests.length],
        max_tokens: maxTokens,
      });
      completionTokens += res.usage?.completion_tokens ?? 0;
      if (!res.choices?.[0]?.message) throw new Error("no choice in the response");
    } catch (err) {
      if (failed++ === 0) console.error("node:", err?.message ?? err);
    }
  }
}

const start = process.hrtime.bigint();
await Promise.all(Array.from({ length: concurrency }, worker));
const secs = Number(process.hrtime.bigint() - start) / 1e9;
console.log(
  `node: ${n} requests in ${secs.toFixed(2)} s (${(n / secs).toFixed(0)} req/s), ${failed} failed, ` +
    `${completionTokens} completion tokens, openai ${sdkVersion}, node ${process.version}`,
);
process.exit(failed > 0 ? 1 : 0);
