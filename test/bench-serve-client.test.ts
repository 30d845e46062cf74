// The load generator's HTTP client (benchmarks/serving/json-connection.ts) against node:http servers that answer in
// each way HTTP/1.1 allows a JSON reply: sized, chunked (split across writes), closing the connection after it, and
// the failures it must name: a body that is not JSON, a connection lost before the reply.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { JsonConnection } from "../benchmarks/serving/json-connection.ts";

/** A server on a free port that answers each POST with `answer(its parsed body, res)`; → its URL and a closer. */
async function server(answer: (body: any, res: http.ServerResponse) => void): Promise<{ url: URL; close: () => Promise<void> }> {
  const s = http.createServer((req, res) => {
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", () => {
      assert.equal(req.method, "POST");
      assert.equal(req.headers["content-type"], "application/json");
      answer(JSON.parse(text), res);
    });
  });
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const url = new URL(`http://127.0.0.1:${(s.address() as AddressInfo).port}/v1/completions`);
  return { url, close: () => new Promise((resolve) => { s.closeAllConnections(); s.close(() => resolve()); }) };
}

test("JsonConnection: sized and chunked replies, one after another on one kept-alive connection", async () => {
  const { url, close } = await server((body, res) => {
    if (body.seed % 2) {
      const text = JSON.stringify({ echo: body, text: "é".repeat(3000) });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
    } else {
      res.writeHead(201, { "content-type": "application/json" }); // no length: node sends it chunked
      res.write(`{"echo": ${JSON.stringify(body)}, `);
      setTimeout(() => res.end(`"text": "${"ü".repeat(5000)}"}`), 5);
    }
  });
  const c = new JsonConnection(url);
  try {
    for (let seed = 0; seed < 6; seed++) {
      const reply = await c.post({ prompt: "1 + 1 =", seed });
      assert.equal(reply.status, seed % 2 ? 200 : 201);
      assert.deepEqual(reply.json.echo, { prompt: "1 + 1 =", seed });
      assert.equal(reply.json.text, (seed % 2 ? "é" : "ü").repeat(seed % 2 ? 3000 : 5000));
    }
  } finally {
    c.close();
    await close();
  }
});

test("JsonConnection: a server that closes after each reply gets a new connection for the next request", async () => {
  const ports = new Set<number>();
  const { url, close } = await server((body, res) => {
    ports.add(res.socket!.remotePort!);
    res.writeHead(200, { "content-type": "application/json", connection: "close" }).end(JSON.stringify({ seed: body.seed }));
  });
  const c = new JsonConnection(url);
  try {
    for (let seed = 0; seed < 3; seed++) assert.deepEqual((await c.post({ seed })).json, { seed });
    assert.equal(ports.size, 3, "one connection per request");
  } finally {
    c.close();
    await close();
  }
});

test("JsonConnection: a body that is not JSON and a connection lost before the reply are errors naming the server", async () => {
  const { url, close } = await server((body, res) => {
    if (body.seed === 0) res.writeHead(200, { "content-length": 5 }).end("hello");
    else res.socket!.destroy();
  });
  const c = new JsonConnection(url);
  try {
    await assert.rejects(c.post({ seed: 0 }), new RegExp(`${url.host} replied with a body that is not JSON`));
    await assert.rejects(c.post({ seed: 1 }), new RegExp(`${url.host} closed the connection before its reply`));
  } finally {
    c.close();
    await close();
  }
});
