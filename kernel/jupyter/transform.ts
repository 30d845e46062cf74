/**
 * A cell's TypeScript → a JavaScript script for V8's REPL mode (see evaluate.ts): types stripped, static imports
 * turned into `await __m1kernel.import(...)`, `import()` and `import.meta` routed through the kernel, `export`
 * dropped, and the last expression statement stored as the cell's result.
 */
import ts from "typescript";
import { RUNTIME } from "./evaluate.ts";

export interface TransformedCell {
  js: string;
  /** Source map (JSON) from `js` back to the cell. */
  map: string;
}

export function transformCell(source: string, name: string): TransformedCell {
  const out = ts.transpileModule(source, {
    fileName: `${name}.ts`,
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, sourceMap: true, esModuleInterop: true },
    transformers: { before: [cellTransformer] },
  });
  const js = out.outputText.replace(/^\/\/# sourceMappingURL=.*$/m, "").replace(/^export \{\};\s*$/m, "");
  return { js, map: out.sourceMapText! };
}

const runtime = (member: string) => ts.factory.createPropertyAccessExpression(ts.factory.createIdentifier(RUNTIME), member);

function importCall(specifier: ts.Expression, attributes?: ts.ImportAttributes): ts.AwaitExpression {
  const f = ts.factory;
  const args: ts.Expression[] = [specifier];
  if (attributes) {
    const props = attributes.elements.map((a) => f.createPropertyAssignment(a.name, a.value));
    args.push(f.createObjectLiteralExpression([f.createPropertyAssignment("with", f.createObjectLiteralExpression(props))]));
  }
  return f.createAwaitExpression(f.createCallExpression(runtime("import"), undefined, args));
}

/** `import d, { a, b as c } from "m"` → `const { default: d, a, b: c } = await __m1kernel.import("m")`. */
function rewriteImport(node: ts.ImportDeclaration): ts.Statement[] {
  const f = ts.factory;
  const call = importCall(node.moduleSpecifier, node.attributes);
  const clause = node.importClause;
  if (!clause) return [f.createExpressionStatement(call)];
  if (clause.isTypeOnly) return [];
  const constant = (name: ts.BindingName, init: ts.Expression) =>
    f.createVariableStatement(undefined, f.createVariableDeclarationList([f.createVariableDeclaration(name, undefined, undefined, init)], ts.NodeFlags.Const));
  const elements: ts.BindingElement[] = [];
  if (clause.name) elements.push(f.createBindingElement(undefined, "default", clause.name));
  const bindings = clause.namedBindings;
  if (bindings && ts.isNamedImports(bindings)) {
    for (const e of bindings.elements) if (!e.isTypeOnly) elements.push(f.createBindingElement(undefined, e.propertyName, e.name));
  }
  if (bindings && ts.isNamespaceImport(bindings)) {
    const out = [constant(bindings.name, call)];
    if (elements.length) out.push(constant(f.createObjectBindingPattern(elements), bindings.name));
    return out;
  }
  return elements.length ? [constant(f.createObjectBindingPattern(elements), call)] : [];
}

const cellTransformer: ts.TransformerFactory<ts.SourceFile> = (context) => {
  const f = ts.factory;
  const deep = (node: ts.Node): ts.Node => {
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      return f.createCallExpression(runtime("import"), undefined, ts.visitNodes(node.arguments, deep) as ts.NodeArray<ts.Expression>);
    }
    if (ts.isMetaProperty(node) && node.keywordToken === ts.SyntaxKind.ImportKeyword) return runtime("meta");
    return ts.visitEachChild(node, deep, context);
  };
  return (file) => {
    const statements: ts.Statement[] = [];
    file.statements.forEach((s, i) => {
      if (ts.isImportDeclaration(s)) return statements.push(...rewriteImport(s));
      if (ts.isExportDeclaration(s) || ts.isExportAssignment(s)) return;
      let stmt = ts.visitNode(s, deep) as ts.Statement;
      if (ts.canHaveModifiers(stmt) && ts.getModifiers(stmt)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
        stmt = f.replaceModifiers(stmt, ts.getModifiers(stmt)!.filter((m) => m.kind !== ts.SyntaxKind.ExportKeyword && m.kind !== ts.SyntaxKind.DefaultKeyword)) as ts.Statement;
      }
      if (i === file.statements.length - 1 && ts.isExpressionStatement(stmt)) {
        stmt = f.createExpressionStatement(f.createAssignment(runtime("last"), f.createParenthesizedExpression(stmt.expression)));
      }
      statements.push(ts.setTextRange(stmt, s));
    });
    return f.updateSourceFile(file, statements);
  };
};
