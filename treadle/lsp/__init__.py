"""The `.flow` language server: the compiler's diagnostics, scopes and formatter for an editor.

`document.FlowDocument` answers questions about one compiled file (diagnostics, hover,
completion, definition, symbols, formatting); `server` speaks the protocol over stdio (pygls).
"""
