/** Kernelspecs: the kernel.json that tells Jupyter how to start the m1 kernel. No Python needed to install one. */
import { mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const KERNEL_NAME = "m1";
export const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "bin", "m1.mjs");

export interface KernelSpec {
  argv: string[];
  display_name: string;
  language: string;
  interrupt_mode: "message";
  metadata: Record<string, unknown>;
}

/** The spec for a node executable and the path of kernel/bin/m1.mjs (absolute, or relative to `{resource_dir}`). */
export function kernelSpec(node = process.execPath, cli = CLI): KernelSpec {
  return {
    argv: [node, cli, "kernel", "--connection-file", "{connection_file}"],
    display_name: "TypeScript (m1-workbench)",
    language: "typescript",
    interrupt_mode: "message",
    metadata: { debugger: false },
  };
}

/** Where `jupyter kernelspec install` would put kernels: --prefix DIR, --user, or the system directory. */
export function kernelsDir(where: { user?: boolean; prefix?: string }): string {
  if (where.prefix) return join(resolve(where.prefix), "share", "jupyter", "kernels");
  if (!where.user) return "/usr/local/share/jupyter/kernels";
  if (process.env.JUPYTER_DATA_DIR) return join(process.env.JUPYTER_DATA_DIR, "kernels");
  if (process.platform === "darwin") return join(homedir(), "Library", "Jupyter", "kernels");
  return join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "jupyter", "kernels");
}

/** Writes `<dir>/<name>/kernel.json`; returns the kernel's directory. */
export function installKernelSpec(dir: string, name = KERNEL_NAME, spec = kernelSpec()): string {
  const target = join(dir, name);
  mkdirSync(target, { recursive: true });
  writeFileSync(join(target, "kernel.json"), JSON.stringify(spec, null, 2) + "\n");
  return target;
}
