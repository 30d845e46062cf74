/**
 * Type checking, completion and hover for cells, from the TypeScript language service.
 *
 * Types persist across cells the way tslab does it, without its patched compiler: the checked file is
 * `<declarations of earlier cells> + <this cell> + export { <this cell's names> }`. Earlier declarations that this
 * cell declares again are dropped first, so `const x` may be re-declared. After a cell runs, the declaration emit
 * (.d.ts) of that file becomes the declarations for the next cell.
 */
import ts from "typescript";
import { statSync } from "node:fs";
import { join } from "node:path";

export interface CellDiagnostic {
  line: number; // 1-based, within the cell
  column: number; // 1-based
  code: number;
  message: string;
}

export interface Completion {
  matches: string[];
  start: number; // UTF-16 offsets in the cell
  end: number;
  types: { text: string; type: string; start: number; end: number }[];
}

const KERNEL_GLOBALS = `import type * as api from "m1-workbench/kernel";
declare global {
  /** Aborted when the running cell is interrupted: pass it to long engine calls, e.g. \`model.generate(p, { signal })\`. */
  const signal: AbortSignal;
  /** Shows a value in the output area (as the last expression of a cell would be shown). */
  const display: typeof api.display;
}
export {};
`;

/** Top-level names a statement declares (variables, functions, classes, types, enums, namespaces, imports). */
export function declaredNames(stmt: ts.Statement): string[] {
  if (ts.isVariableStatement(stmt)) return stmt.declarationList.declarations.flatMap((d) => bindingNames(d.name));
  if (ts.isImportDeclaration(stmt)) {
    const clause = stmt.importClause;
    if (!clause) return [];
    const names = clause.name ? [clause.name.text] : [];
    const b = clause.namedBindings;
    if (b && ts.isNamespaceImport(b)) names.push(b.name.text);
    if (b && ts.isNamedImports(b)) names.push(...b.elements.map((e) => e.name.text));
    return names;
  }
  if (ts.isExportDeclaration(stmt) && !stmt.moduleSpecifier && stmt.exportClause && ts.isNamedExports(stmt.exportClause)) {
    return stmt.exportClause.elements.map((e) => e.name.text);
  }
  const named = stmt as ts.Statement & { name?: ts.Node };
  if (named.name && ts.isIdentifier(named.name)) return [named.name.text];
  return [];
}

function bindingNames(name: ts.BindingName): string[] {
  if (ts.isIdentifier(name)) return [name.text];
  return name.elements.flatMap((e) => (ts.isOmittedExpression(e) ? [] : bindingNames(e.name)));
}

const hasExport = (s: ts.Statement) =>
  ts.isExportDeclaration(s) || ts.isExportAssignment(s) || (ts.canHaveModifiers(s) && !!ts.getModifiers(s)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword));

/** Earlier declarations without the names in `drop`, as text. */
function withoutNames(decls: ts.SourceFile, drop: Set<string>): string {
  const f = ts.factory;
  const kept: ts.Statement[] = [];
  for (const s of decls.statements) {
    if (ts.isVariableStatement(s)) {
      const ds = s.declarationList.declarations.filter((d) => !bindingNames(d.name).some((n) => drop.has(n)));
      if (ds.length) kept.push(f.updateVariableStatement(s, s.modifiers, f.updateVariableDeclarationList(s.declarationList, ds)));
    } else if (ts.isImportDeclaration(s) && s.importClause) {
      const c = s.importClause;
      const name = c.name && !drop.has(c.name.text) ? c.name : undefined;
      let bindings = c.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings) && drop.has(bindings.name.text)) bindings = undefined;
      if (bindings && ts.isNamedImports(bindings)) {
        const els = bindings.elements.filter((e) => !drop.has(e.name.text));
        bindings = els.length ? f.updateNamedImports(bindings, els) : undefined;
      }
      if (name || bindings) kept.push(f.updateImportDeclaration(s, s.modifiers, f.updateImportClause(c, c.isTypeOnly, name, bindings), s.moduleSpecifier, s.attributes));
    } else if (ts.isExportDeclaration(s) && s.exportClause && ts.isNamedExports(s.exportClause) && !s.moduleSpecifier) {
      const els = s.exportClause.elements.filter((e) => !drop.has(e.name.text));
      if (els.length) kept.push(f.updateExportDeclaration(s, s.modifiers, s.isTypeOnly, f.updateNamedExports(s.exportClause, els), undefined, s.attributes));
    } else if (!declaredNames(s).some((n) => drop.has(n))) {
      kept.push(s);
    }
  }
  return ts.createPrinter().printFile(f.updateSourceFile(decls, kept));
}

export class CellCompiler {
  private readonly cellFile: string;
  private readonly globalsFile: string;
  private readonly options: ts.CompilerOptions;
  private readonly service: ts.LanguageService;
  private text = "";
  private version = 0;
  private decls = ts.createSourceFile("prev.d.ts", "", ts.ScriptTarget.ES2022);

  /** `paths`: module names cells may import from anywhere (m1-workbench, tslab, m1-workbench/kernel) → their .ts/.d.ts. */
  constructor(cwd: string, typeRoots: string[], paths: Record<string, string>) {
    this.cellFile = join(cwd, "__m1_cell__.ts");
    this.globalsFile = join(cwd, "__m1_kernel_globals__.ts");
    this.options = {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2023.d.ts"],
      types: ["node"],
      typeRoots,
      paths: Object.fromEntries(Object.entries(paths).map(([k, v]) => [k, [v]])),
      esModuleInterop: true,
      allowImportingTsExtensions: true,
      resolveJsonModule: true,
      skipLibCheck: true,
      declaration: true,
      emitDeclarationOnly: true,
    };
    const virtual = (f: string) => (f === this.cellFile ? this.text : f === this.globalsFile ? KERNEL_GLOBALS : undefined);
    const host: ts.LanguageServiceHost = {
      getCompilationSettings: () => this.options,
      getScriptFileNames: () => [this.cellFile, this.globalsFile],
      getScriptVersion: (f) => (f === this.cellFile ? String(this.version) : f === this.globalsFile ? "0" : String(mtime(f))),
      getScriptSnapshot: (f) => {
        const text = virtual(f) ?? ts.sys.readFile(f);
        return text === undefined ? undefined : ts.ScriptSnapshot.fromString(text);
      },
      getCurrentDirectory: () => cwd,
      getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
      fileExists: (f) => virtual(f) !== undefined || ts.sys.fileExists(f),
      readFile: (f) => virtual(f) ?? ts.sys.readFile(f),
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
      realpath: ts.sys.realpath,
    };
    this.service = ts.createLanguageService(host, ts.createDocumentRegistry());
  }

  /** Places `cell` after the earlier declarations; returns where the cell starts in the checked file. */
  private load(cell: string): number {
    const sf = ts.createSourceFile("cell.ts", cell, ts.ScriptTarget.ES2022, true);
    const names = new Set(sf.statements.flatMap(declaredNames));
    const exported = new Set(sf.statements.filter(hasExport).flatMap(declaredNames));
    const fresh = [...names].filter((n) => !exported.has(n));
    const prefix = withoutNames(this.decls, names) + "\n";
    this.text = `${prefix}${cell}\n;export { ${fresh.join(", ")} };\n`;
    this.version++;
    return prefix.length;
  }

  /** Errors of `cell` against the earlier cells (syntax only when the cell starts with a `// @ts-nocheck` comment). */
  check(cell: string): CellDiagnostic[] {
    const start = this.load(cell);
    const semantic = !/^\s*\/\/\s*@ts-nocheck/.test(cell);
    const all = [...this.service.getSyntacticDiagnostics(this.cellFile), ...(semantic ? this.service.getSemanticDiagnostics(this.cellFile) : [])];
    const lines = cell.split("\n");
    const out: CellDiagnostic[] = [];
    for (const d of all) {
      if (d.category !== ts.DiagnosticCategory.Error || d.start === undefined) continue;
      let at = d.start - start;
      if (at < 0 || at > cell.length) continue;
      let line = 0;
      while (line < lines.length - 1 && at > lines[line].length) at -= lines[line++].length + 1;
      out.push({ line: line + 1, column: at + 1, code: d.code, message: ts.flattenDiagnosticMessageText(d.messageText, "\n") });
    }
    return out;
  }

  /** After the checked cell ran: its declarations (and the earlier ones it kept) become those of the next cell. */
  commit(): void {
    const dts = this.service.getEmitOutput(this.cellFile, true).outputFiles.find((f) => f.name.endsWith(".d.ts"));
    if (dts) this.decls = ts.createSourceFile("prev.d.ts", dts.text, ts.ScriptTarget.ES2022, true);
  }

  complete(cell: string, cursor: number): Completion {
    const start = this.load(cell);
    let from = cursor;
    while (from > 0 && /[\w$]/.test(cell[from - 1])) from--;
    const prefix = cell.slice(from, cursor).toLowerCase();
    const info = this.service.getCompletionsAtPosition(this.cellFile, start + cursor, { includeCompletionsWithInsertText: true });
    const entries = (info?.entries ?? [])
      .filter((e) => e.name.toLowerCase().startsWith(prefix) && !e.name.startsWith("__m1"))
      .sort((a, b) => a.sortText.localeCompare(b.sortText) || a.name.localeCompare(b.name));
    return {
      matches: entries.map((e) => e.name),
      start: from,
      end: cursor,
      types: entries.map((e) => ({ text: e.name, type: e.kind, start: from, end: cursor })),
    };
  }

  /** Signature and documentation of the symbol at `cursor`, or null. */
  inspect(cell: string, cursor: number): { signature: string; docs: string } | null {
    const start = this.load(cell);
    const info =
      this.service.getQuickInfoAtPosition(this.cellFile, start + cursor) ??
      (cursor > 0 ? this.service.getQuickInfoAtPosition(this.cellFile, start + cursor - 1) : undefined);
    if (!info) return null;
    const tags = (info.tags ?? []).map((t) => `@${t.name} ${ts.displayPartsToString(t.text)}`);
    return { signature: ts.displayPartsToString(info.displayParts), docs: [ts.displayPartsToString(info.documentation), ...tags].filter(Boolean).join("\n\n") };
  }
}

function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** is_complete: "complete", "incomplete" (with an indent for the next line) or "invalid". */
export function completeness(code: string): { status: "complete" | "incomplete" | "invalid"; indent?: string } {
  const out = ts.transpileModule(code, { reportDiagnostics: true, compilerOptions: { target: ts.ScriptTarget.ES2022 } });
  const errors = out.diagnostics ?? [];
  if (errors.length === 0) return { status: "complete" };
  // Incomplete when every error is at the end (an unclosed bracket, string or statement that more lines can finish);
  // an error before the end, as in ")(", can never be fixed by typing on.
  if (errors.every((d) => d.start !== undefined && d.start + (d.length ?? 0) >= code.trimEnd().length)) {
    const last = code.slice(code.lastIndexOf("\n") + 1);
    const indent = last.match(/^\s*/)![0] + (/[{([]\s*$/.test(last) ? "  " : "");
    return { status: "incomplete", indent };
  }
  return { status: "invalid" };
}

