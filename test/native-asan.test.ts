// The native tests and the sampler's (native/src/sampling.cc) again on an AddressSanitizer build of the addon
// (node native/build.mjs --asan): any read or write out of bounds, use after free or double free in the addon
// (kernels, pool, N-API boundary) fails this test with ASan's report, even where the plain build would go on with
// corrupted memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers.ts";

test("test/native.test.ts and test/sampling.test.ts pass under AddressSanitizer", () => {
  const build = spawnSync(process.execPath, [join(ROOT, "native", "build.mjs"), "--asan"], { encoding: "utf8" });
  assert.equal(build.status, 0, `node native/build.mjs --asan failed:\n${build.stdout}\n${build.stderr}`);
  const libasan = spawnSync(process.env.CXX || "g++", ["-print-file-name=libasan.so"], { encoding: "utf8" }).stdout.trim();
  assert.ok(existsSync(libasan), `libasan.so not found (${libasan}): install the compiler's sanitizer runtime (Debian: libasan8)`);
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", join(ROOT, "test", "native.test.ts"), join(ROOT, "test", "sampling.test.ts")], {
    cwd: ROOT,
    encoding: "utf8",
    env: {
      ...process.env,
      M1_NATIVE_ADDON: join(ROOT, "native", "build-asan", "build", "Release", "m1native.node"),
      LD_PRELOAD: libasan,
      ASAN_OPTIONS: "detect_leaks=0", // V8 and Node keep memory until exit by design
    },
    timeout: 600_000,
  });
  const report = r.stderr.match(/==\d+==ERROR: AddressSanitizer[\s\S]*/)?.[0];
  assert.equal(report, undefined, `AddressSanitizer: ${report?.slice(0, 4000)}`);
  assert.equal(r.status, 0, `native tests failed under ASan:\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-2000)}`);
});
