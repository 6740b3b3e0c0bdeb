#!/bin/sh
# `make demo`: a throwaway identity, a short recorded transcript, sealed, then
# verified by `toolkit verify` and by stock `ssh-keygen -Y verify`. Everything
# lives in a temporary directory; nothing touches your real config or keyring.
set -eu
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/toolkit-demo.XXXXXX")
export XDG_CONFIG_HOME="$DEMO/config" XDG_DATA_HOME="$DEMO/data" XDG_STATE_HOME="$DEMO/state"
TOOLKIT_KEY_PASSPHRASE=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export TOOLKIT_KEY_PASSPHRASE
CAST="$DEMO/session.cast"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A throwaway technician identity (encrypted key file, not your keyring)"
$BIN/toolkit keys init --name "Demo Technician" --email demo@example.com --no-keyring
$BIN/toolkit keys show

step "Trust it: its allowed_signers line, in the config dir"
mkdir -p "$XDG_CONFIG_HOME/toolkit"
$BIN/toolkit keys allowed-signers | tee "$XDG_CONFIG_HOME/toolkit/allowed_signers"

step "Record a short diagnostic session on this machine"
$BIN/python scripts/demo_session.py "$CAST"

step "toolkit verify"
$BIN/toolkit verify "$CAST"

step "ssh-keygen -Y verify (stock OpenSSH, no toolkit)"
ssh-keygen -Y verify -f "$XDG_CONFIG_HOME/toolkit/allowed_signers" -I demo@example.com \
    -n toolkit-transcript -s "$CAST.sig" < "$CAST"

step "Change one byte of a copy: toolkit verify says where"
cp "$CAST" "$DEMO/tampered.cast"
cp "$CAST.sig" "$DEMO/tampered.cast.sig"
sed -i 's/uptime/uptimE/' "$DEMO/tampered.cast"
if $BIN/toolkit verify "$DEMO/tampered.cast"; then
    echo "tampering went unnoticed: this is a bug" >&2
    exit 1
fi

if command -v asciinema >/dev/null 2>&1; then
    step "Play it back with asciinema cat"
    script -qec "asciinema cat '$CAST'" /dev/null
fi

step "Done. Files are in $DEMO"
