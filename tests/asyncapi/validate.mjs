// Validates AsyncAPI documents with the official parser (@asyncapi/parser): prints, per file, the
// diagnostics as JSON lines {file, severity, code, message, path}; exits 1 when any is an error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const severities = ["error", "warning", "info", "hint"];
let errors = 0;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
  for (const d of diagnostics) {
    const severity = severities[d.severity] ?? String(d.severity);
    if (severity === "error") errors += 1;
    console.log(JSON.stringify({ file, severity, code: d.code, message: d.message, path: d.path.join("/") }));
  }
  if (document === undefined && !diagnostics.some((d) => d.severity === 0)) errors += 1;
  console.log(JSON.stringify({ file, parsed: document !== undefined, version: document?.version() ?? null }));
}
process.exit(errors ? 1 : 0);
