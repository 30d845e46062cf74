#!/usr/bin/env node
// Builds native/build/Release/m1native.node with node-gyp (offline: uses the running Node's own
// headers). Skips the build when the addon is newer than every source (pass --force to rebuild).
// --asan builds the same sources with AddressSanitizer into native/build-asan/build/Release/m1native.node (load it
// with M1_NATIVE_ADDON=that path under LD_PRELOAD=libasan.so; test/native-asan.test.ts does).
// Usage: node native/build.mjs [--force] [--asan]
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, devNull } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..");
const args = process.argv.slice(2);
const force = args.includes("--force");
const asan = args.includes("--asan");
// node-gyp builds in <project>/build: the ASan build gets a project of its own that shares the sources
const project = asan ? join(here, "build-asan") : here;
const addon = join(project, "build", "Release", "m1native.node");
if (asan) {
  mkdirSync(project, { recursive: true });
  copyFileSync(join(here, "binding.gyp"), join(project, "binding.gyp"));
  if (!existsSync(join(project, "src"))) symlinkSync(join("..", "src"), join(project, "src"));
}
const require = createRequire(import.meta.url);
// the running node's install prefix (e.g. /usr for /usr/bin/node); its include/node has the headers
const nodePrefix = resolve(process.execPath, "../..");

function log(msg) {
  process.stderr.write(`m1native: ${msg}\n`);
}

function newestInput() {
  let newest = statSync(join(here, "binding.gyp")).mtimeMs;
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(here, "src"));
  return newest;
}

function has(cmd) {
  const r = spawnSync(`${cmd} --version`, { stdio: "ignore", shell: true });
  return !r.error && r.status === 0;
}

let headers = null; // where the Node headers were found, if anywhere

function fail(reason) {
  const missing = [];
  const cxx = process.env.CXX;
  if (process.platform !== "win32") {
    if (cxx ? !has(cxx) : !(has("g++") || has("c++") || has("clang++"))) {
      missing.push(cxx ? `the C++ compiler CXX=${cxx}` : "a C++17 compiler (g++ or clang++)");
    }
    if (!has("make")) missing.push("make");
  }
  if (!has("python3") && !has("python")) missing.push("python3");
  if (!headers && !process.env.npm_config_nodedir) missing.push(`the Node headers (no ${join(nodePrefix, "include", "node", "node_api.h")})`);
  log(`build failed: ${reason}`);
  if (missing.length) log(`missing: ${missing.join("; ")}`);
  log("the native addon needs a C++17 toolchain (g++ or clang++, make, python3) and the Node headers:");
  log("  Debian/Ubuntu: apt-get install g++ make python3   (Node headers: nodejs from nodejs.org/NodeSource ships");
  log("                 include/node; Debian's own nodejs package needs libnode-dev)");
  log("  Fedora/RHEL:   dnf install gcc-c++ make python3 nodejs-devel");
  log("  macOS:         xcode-select --install");
  log("then run: npm run build:native");
  process.exit(1);
}

if (!force && existsSync(addon) && statSync(addon).mtimeMs > newestInput()) {
  log(`up to date (${addon}); use --force to rebuild`);
  process.exit(0);
}

let nodeGyp;
try {
  nodeGyp = join(dirname(require.resolve("node-gyp/package.json")), "bin", "node-gyp.js");
} catch {
  nodeGyp = join(root, "node_modules", "node-gyp", "bin", "node-gyp.js");
}
if (!existsSync(nodeGyp)) fail(`node-gyp not found (looked for ${nodeGyp}); run npm install`);

let napiInclude;
try {
  napiInclude = dirname(require.resolve("node-addon-api/package.json"));
} catch {
  fail("node-addon-api not found; run npm install");
}

const gypArgs = [nodeGyp, "rebuild", "--directory", project, `--jobs=${availableParallelism()}`];
gypArgs.push(`--napi_include_dir=${napiInclude}`);

// Offline headers: the running node's prefix (e.g. /usr for /usr/bin/node) when it has include/node.
if (!process.env.npm_config_nodedir) {
  if (existsSync(join(nodePrefix, "include", "node", "node_api.h"))) {
    headers = nodePrefix;
    gypArgs.push(`--nodedir=${nodePrefix}`);
  } else {
    log(`no Node headers under ${join(nodePrefix, "include", "node")}; node-gyp will try its cache or a download`);
  }
}

// AVX512-BF16 is enabled in the AVX-512 kernel library only if the compiler accepts it.
if (process.arch === "x64" && process.platform !== "win32") {
  const cxx = process.env.CXX || "c++";
  const probe = spawnSync(cxx, ["-mavx512f", "-mavx512bf16", "-x", "c++", "-c", "-o", devNull, "-"], {
    input: "#include <immintrin.h>\n__m512 f(__m512 a, __m512bh b, __m512bh c) { return _mm512_dpbf16_ps(a, b, c); }\n",
    stdio: ["pipe", "ignore", "ignore"],
  });
  gypArgs.push(`--m1_avx512bf16=${!probe.error && probe.status === 0 ? 1 : 0}`);
}

log(`building ${addon}`);
// gyp's Makefile appends CXXFLAGS and LDFLAGS from the environment
const sanitize = "-fsanitize=address -fno-omit-frame-pointer -g";
const env = asan ? { ...process.env, CFLAGS: sanitize, CXXFLAGS: sanitize, LDFLAGS: "-fsanitize=address" } : process.env;
const r = spawnSync(process.execPath, gypArgs, { stdio: "inherit", cwd: root, env });
if (r.error) fail(r.error.message);
if (r.status !== 0) fail(`node-gyp exited with status ${r.status}`);
if (!existsSync(addon)) fail(`node-gyp succeeded but ${addon} is missing`);
log("built");
