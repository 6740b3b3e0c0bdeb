#!/bin/sh
# Install the Debian packages that `make demo` and `make test` need, only when
# something is missing. Needs root (or sudo) only in that case.
set -eu

missing=""
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 || missing="$missing $2"
}
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
need ssh-keygen openssh-client
need ssh-agent openssh-client
if [ "${1:-}" = "--test" ]; then
    [ -x /usr/sbin/sshd ] || missing="$missing openssh-server"
    need asciinema asciinema
    need script bsdutils
    need tmux tmux
fi
[ -z "$missing" ] && exit 0

# shellcheck disable=SC2086
set -- $(printf '%s\n' $missing | sort -u)
echo "Installing Debian packages: $*" >&2
if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "Missing Debian packages: $*. Install them as root: apt-get install $*" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
