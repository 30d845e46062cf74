/**
 * `m1 kernel`: run the kernel for a connection file (what Jupyter starts), or install its kernelspec.
 *   m1 kernel --connection-file FILE
 *   m1 kernel install [--user | --prefix DIR] [--name NAME]
 */
import { InputError } from "../../engine/errors.ts";
import { parseFlags, UsageError } from "./args.ts";
import { readConnectionFile } from "../jupyter/connection.ts";
import { KERNEL_NAME, installKernelSpec, kernelsDir } from "../jupyter/kernelspec.ts";

export const KERNEL_USAGE = `  m1 kernel --connection-file FILE          run the Jupyter kernel (Jupyter starts it this way)
  m1 kernel install [--user | --prefix DIR] [--name NAME]   write the kernelspec (default: /usr/local/share/jupyter/kernels)`;

export async function kernelCommand(args: string[]): Promise<number> {
  if (args[0] === "install") {
    const { values, positionals } = parseFlags(args.slice(1), { user: { type: "boolean" }, prefix: { type: "string" }, name: { type: "string" } });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    if (values.user && values.prefix) throw new InputError("give --user or --prefix, not both");
    const dir = installKernelSpec(kernelsDir(values), values.name ?? KERNEL_NAME);
    process.stdout.write(`installed kernelspec ${values.name ?? KERNEL_NAME} in ${dir}\n`);
    return 0;
  }
  const { values, positionals } = parseFlags(args, { "connection-file": { type: "string", short: "f" } });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!values["connection-file"]) throw new InputError(`--connection-file is required\nusage:\n${KERNEL_USAGE}`);
  let info;
  try {
    info = readConnectionFile(values["connection-file"]);
  } catch (err) {
    throw new InputError((err as Error).message);
  }
  // The kernel imports cells' modules through vm's main-context loader, which Node 20 flags as experimental.
  process.removeAllListeners("warning");
  process.on("warning", (w) => {
    if (w.name !== "ExperimentalWarning") process.stderr.write(`(node:${process.pid}) ${w.name}: ${w.message}\n`);
  });
  const { Kernel } = await import("../jupyter/session.ts");
  await new Kernel(info).start();
  return 0;
}
