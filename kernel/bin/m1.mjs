#!/usr/bin/env node
// The `m1` command: registers tsx so the TypeScript sources run as they are, then hands over to the CLI.
// `m1 kernel --connection-file F` goes straight to the kernel: the CLI module loads the engine and its native
// addon, which the kernel only loads when a cell imports it (a fast start, and a kernel even without the addon).
import { register } from "tsx/esm/api";

register();
const argv = process.argv.slice(2);
if (argv[0] === "kernel" && argv[1] !== "install") {
  const { kernelCommand } = await import("../command.ts");
  process.exitCode = await kernelCommand(argv.slice(1)).catch((err) => {
    process.stderr.write(`m1 kernel: ${err.message}\n`);
    return 1;
  });
} else {
  const { main } = await import("../cli.ts");
  process.exitCode = await main(argv);
}
