// Starts `treadle lsp` (or the command in the `treadle.command` setting) for .flow files.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace
    .getConfiguration("treadle")
    .get("command", ["treadle", "lsp"]);
  client = new LanguageClient(
    "treadle",
    "treadle language server",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "flow" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
