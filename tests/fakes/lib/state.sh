# Sourced by every stand-in (bin/*): where its state lives, and a record of the call.
# The agent runs commands with PATH and LANG only, so the state is found next
# to the script itself (FAKE/bin/NAME -> FAKE/state), never through the environment.
STATE=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)/state
mkdir -p "$STATE"
printf '%s' "$(basename -- "$0")" >>"$STATE/calls"
for arg in "$@"; do printf ' %s' "$arg" >>"$STATE/calls"; done
printf '\n' >>"$STATE/calls"
