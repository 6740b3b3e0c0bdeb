#!/bin/sh
# Regenerate the shell completion scripts in completions/ from the CLI itself.
set -eu
cd "$(dirname "$0")/.."
for shell in bash zsh fish; do
    _TOOLKIT_COMPLETE="source_$shell" .venv/bin/toolkit > "completions/toolkit.$shell"
done
