#!/bin/sh
# Real ticket systems for toolkit's tests, on 127.0.0.1 only:
#   ticket-systems.sh start redmine|rt STATE_DIR PORT
#   ticket-systems.sh stop  redmine|rt STATE_DIR
# start installs the Debian packages when missing (as root, or through sudo),
# copies the packaged SQLite database into STATE_DIR on first start (so the
# system's own database is never touched), turns on the API, makes a key,
# starts the server and waits for it. STATE_DIR then holds url, credential
# and pid. A later start with the same STATE_DIR keeps its database (a
# restart). Exit 77: the packages cannot be installed here (the reason on
# stderr); any other non-zero exit is a failure.
set -eu

cmd=${1:?start or stop}; system=${2:?redmine or rt}; state=${3:?state dir}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$state"
log="$state/server.log"

cannot() { echo "$*" >&2; exit 77; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
    else cannot "Installing $system needs root or password-less sudo (apt-get install $*)."
    fi
}

install_packages() { # PACKAGE...
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    command -v apt-get >/dev/null 2>&1 || cannot "No apt-get: cannot install$missing."
    echo "Installing Debian packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! as_root apt-get install -y -qq --no-install-recommends $missing >"$state/apt.log" 2>&1; then
        as_root apt-get update -qq >>"$state/apt.log" 2>&1 || true
        # shellcheck disable=SC2086
        as_root apt-get install -y -qq --no-install-recommends $missing >>"$state/apt.log" 2>&1 ||
            cannot "apt-get install$missing failed: $(tail -n 3 "$state/apt.log" | tr '\n' ' ')"
    fi
}

wait_http() { # URL
    python3 - "$1" <<'PY'
import sys, time, urllib.error, urllib.request
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1], timeout=5).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answers: that is all we wait for
    except OSError:
        time.sleep(0.1)
sys.exit(f"{sys.argv[1]} did not answer within 120 s")
PY
}

stop_pid() {
    [ -f "$state/pid" ] || return 0
    pid=$(cat "$state/pid")
    if kill "$pid" 2>/dev/null; then
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$state/pid"
}

start_redmine() {
    port=$1
    install_packages redmine redmine-sqlite ruby-webrick
    # Debian's bundle lacks webrick (Ruby 3 dropped it), and `rails server` fails; rackup works.
    [ -f /usr/share/redmine/Gemfile.local ] || echo "gem 'webrick'" | as_root tee /usr/share/redmine/Gemfile.local >/dev/null
    db="$state/redmine.sqlite3"
    if [ ! -f "$db" ]; then
        cp /var/lib/dbconfig-common/sqlite3/redmine/instances/default/redmine_default "$db"
        python3 - "$db" "$state/credential" <<'PY'
import secrets, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
key = secrets.token_hex(20)
now = "datetime('now')"
db.execute(f"insert into settings(name, value, updated_on) values('rest_api_enabled', '1', {now})")
db.execute(
    f"insert into tokens(user_id, action, value, created_on, updated_on) values(1, 'api', ?, {now}, {now})",
    (key,),
)
db.commit()
open(sys.argv[2], "w").write(key)
PY
    fi
    (cd /usr/share/redmine && DATABASE_URL="sqlite3:$db" RAILS_ENV=production \
        rackup -E production -o 127.0.0.1 -p "$port" -D -P "$state/pid" config.ru >"$log" 2>&1)
    echo "http://127.0.0.1:$port" >"$state/url"
    wait_http "http://127.0.0.1:$port/projects.json"
}

start_rt() {
    port=$1
    install_packages request-tracker5 rt5-db-sqlite rt5-standalone
    conf=/etc/request-tracker5/RT_SiteConfig.d/99-toolkit-tests.pm
    cmp -s "$here/ticket-systems-rt.pm" "$conf" 2>/dev/null || as_root cp "$here/ticket-systems-rt.pm" "$conf"
    db="$state/rt.sqlite3"
    export TOOLKIT_RT_DB="$db" TOOLKIT_RT_PORT="$port"
    if [ ! -f "$db" ]; then
        cp /var/lib/dbconfig-common/sqlite3/request-tracker5/rtdb "$db"
        # An API token for root, made the way RT's own web page makes one.
        perl -I/usr/share/request-tracker5/lib -e '
            use RT; RT::LoadConfig(); RT::Init();
            my $user = RT::User->new(RT->SystemUser); $user->Load("root");
            my $token = RT::AuthToken->new(RT::CurrentUser->new($user));
            my ($ok, $msg, $auth) = $token->Create(Owner => $user->id, Description => "toolkit tests");
            die "cannot make an RT token: $msg\n" unless $ok;
            print $auth;' >"$state/credential" 2>>"$log"
    fi
    setsid /usr/share/request-tracker5/libexec/rt-server --host 127.0.0.1 --port "$port" \
        >"$log" 2>&1 </dev/null &
    echo $! >"$state/pid"
    echo "http://127.0.0.1:$port" >"$state/url"
    wait_http "http://127.0.0.1:$port/REST/2.0/"
}

case "$cmd:$system" in
    start:redmine) start_redmine "${4:?port}" ;;
    start:rt) start_rt "${4:?port}" ;;
    stop:redmine | stop:rt) stop_pid ;;
    *) echo "usage: $0 start|stop redmine|rt STATE_DIR [PORT]" >&2; exit 2 ;;
esac
