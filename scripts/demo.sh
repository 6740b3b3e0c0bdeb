#!/bin/sh
# `make demo`: a whole support session on this machine, over loopback. A
# customer runs `toolkit share --yes`; a technician runs `toolkit connect
# --batch` with a few diagnostics, an allowed read and a refused one; the
# sealed transcript lands on the ticket and is verified by `toolkit verify`
# and by stock `ssh-keygen -Y verify`. Customer and technician each get their
# own throwaway home in a temporary directory: nothing touches your real
# config, keys or keyring, and no configuration is needed (built-in policy).
set -eu
cd "$(dirname "$0")/.."
TOOLKIT="$(pwd)/.venv/bin/toolkit"
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/toolkit-demo.XXXXXX")
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
as() {  # as customer|technician COMMAND...: run with that person's own home
    who=$1; shift
    HOME="$DEMO/$who" XDG_CONFIG_HOME="$DEMO/$who/.config" XDG_DATA_HOME="$DEMO/$who/.local/share" \
        XDG_STATE_HOME="$DEMO/$who/.local/state" "$@"
}
mkdir -p "$DEMO/customer" "$DEMO/technician"
TOOLKIT_KEY_PASSPHRASE=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export TOOLKIT_KEY_PASSPHRASE
SHARE_PID=
cleanup() { [ -n "$SHARE_PID" ] && kill "$SHARE_PID" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

step "Technician: a throwaway identity (encrypted key file, not your keyring)"
as technician "$TOOLKIT" keys init --name "Demo Technician" --email demo@example.com --no-keyring
as technician mkdir -p "$DEMO/technician/.config/toolkit"
as technician "$TOOLKIT" keys allowed-signers >"$DEMO/technician/.config/toolkit/allowed_signers"

step "Customer: toolkit share --yes (approves what is asked, for this demo only)"
as customer "$TOOLKIT" share --yes --json --code-file "$DEMO/code" >"$DEMO/share.json" 2>"$DEMO/share.log" &
SHARE_PID=$!
i=0
while [ ! -s "$DEMO/share.json" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$SHARE_PID" 2>/dev/null; then
        cat "$DEMO/share.log" >&2
        echo "toolkit share did not start" >&2
        exit 1
    fi
    sleep 0.1
done
cat "$DEMO/share.json"
PORT=$(sed -n 's/.*"port": \([0-9]*\).*/\1/p' "$DEMO/share.json" | head -n 1)
CODE=$(cat "$DEMO/code")

step "Technician: toolkit connect 127.0.0.1:$PORT --code $CODE --ticket DEMO-1 --batch -"
cat >"$DEMO/batch.txt" <<'BATCH'
diag system
run uptime
read /etc/os-release
ls /etc
read ~/.ssh/id_ed25519
BATCH
sed 's/^/    /' "$DEMO/batch.txt"
status=0
as technician "$TOOLKIT" connect "127.0.0.1:$PORT" --code "$CODE" --ticket DEMO-1 \
    --batch "$DEMO/batch.txt" || status=$?
echo "(exit status $status: 3 means something was refused, here the private key)"
wait "$SHARE_PID" || true
SHARE_PID=

step "What the customer saw"
cat "$DEMO/share.log"

step "The ticket"
as technician "$TOOLKIT" tickets show DEMO-1
CAST=$(as technician "$TOOLKIT" tickets show DEMO-1 --json |
    sed -n 's/.*"location": "\([^"]*\.cast\)".*/\1/p' | head -n 1)

step "toolkit verify (a supervisor's check)"
as technician "$TOOLKIT" verify "$CAST"

step "ssh-keygen -Y verify (stock OpenSSH, no toolkit)"
ssh-keygen -Y verify -f "$DEMO/technician/.config/toolkit/allowed_signers" -I demo@example.com \
    -n toolkit-transcript -s "$CAST.sig" <"$CAST"

step "Change one byte of a copy: toolkit verify says where"
cp "$CAST" "$DEMO/tampered.cast"
cp "$CAST.sig" "$DEMO/tampered.cast.sig"
sed -i 's/uptime/uptimE/' "$DEMO/tampered.cast"
if as technician "$TOOLKIT" verify "$DEMO/tampered.cast"; then
    echo "tampering went unnoticed: this is a bug" >&2
    exit 1
fi

if command -v asciinema >/dev/null 2>&1; then
    step "Play it back with asciinema cat"
    script -qec "asciinema cat '$CAST'" /dev/null
fi

step "Done. Files are in $DEMO"
