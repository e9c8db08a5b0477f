#!/usr/bin/env bash
# Install a release build of pdfworker system-wide on Debian and start N instances behind
# the system nginx. Run as root from a checkout, after `cargo build --release`:
#
#   sudo PDFWORKER_INSTANCES=2 ./deploy/install.sh
#
# Idempotent: run again with the same build and N, it rewrites no file, restarts nothing and
# succeeds. Run with a new build (or changed units) it upgrades: the instances are restarted
# one after another, and each `systemctl restart` returns only once the new process has said
# READY=1 (Type=notify), so the others serve meanwhile and requests sent to the restarting one
# wait in its socket (a rolling restart). deploy/uninstall.sh undoes it.
#
# What it does:
#   - installs nginx if missing;
#   - creates the system user and group `pdfworker`, and makes `pdfworker` the group of
#     nginx's worker processes (`user www-data pdfworker;` in /etc/nginx/nginx.conf): they
#     reach the socket and read the finished PDFs through it, while other applications that
#     run as www-data (PHP-FPM pools, CGI scripts) do not (www-data is not a member; an
#     upgrade takes it out, and gives sockets an older unit made for www-data to pdfworker);
#   - copies the binary to /usr/local/bin, the units to /etc/systemd/system, README to
#     /usr/local/share/doc/pdfworker, each only when it differs from the installed one;
#   - creates /var/lib/pdfworker as the unit's StateDirectory= would, and runs
#     `pdfworker check-config` on it and /etc/pdfworker/reports as the user `pdfworker`;
#   - raises nginx's limits in /etc/nginx/nginx.conf (in the same edit as the group) to at
#     least `worker_rlimit_nofile 65536`
#     (main context) and `worker_connections 16384` (events): every live-progress watcher
#     holds a client and an upstream connection for as long as it watches;
#   - installs nginx/pdfworker.conf as the site `pdfworker` with one upstream line per
#     instance, and disables Debian's stock `default` site (both want port 80);
#   - enables and starts pdfworker@1..N (socket + service), restarts them when the binary or
#     the units changed, stops and disables instances above N;
#   - checks the nginx config and reloads nginx when its config changed.
set -euo pipefail

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# The nginx limits the site needs (see nginx/pdfworker.conf). The unit's LimitNOFILE=16384
# is the worker's own, a separate process.
NGINX_RLIMIT_NOFILE=65536
NGINX_WORKER_CONNECTIONS=16384

# put MODE SRC DEST: installs SRC as DEST (a temp file renamed over it, so a reader never
# sees half a file) unless DEST has that content and mode already. Status 0 when it wrote,
# 1 when DEST was up to date.
put() {
    local mode=$1 src=$2 dest=$3
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        return 1
    fi
    install -m "$mode" "$src" "$dest.new"
    mv -f "$dest.new" "$dest"
    echo "installed $dest"
}

# awk functions both nginx.conf edits use: a line without its comment, and how much a line
# opens or closes braces (directives are matched one per line, as Debian's nginx.conf has
# them; the caller checks the result with `nginx -t`).
NGINX_AWK_LIB='
    function code(line) { sub(/#.*/, "", line); return line }
    function braces(line,   c, opens, closes) {
        c = code(line)
        opens = gsub(/\{/, "{", c)
        closes = gsub(/\}/, "}", c)
        return opens - closes
    }
    function indent_of(line) { match(line, /^[[:space:]]*/); return substr(line, 1, RLENGTH) }
'

# nginx_limits FILE: FILE (an nginx.conf) on stdout with worker_rlimit_nofile in the main
# context and worker_connections in `events {}` raised to at least the values above; a
# directive that is missing is added, one with a higher value is left alone, and a file
# that already has them comes out unchanged. Directives are matched one per line, as
# Debian's nginx.conf has them; the caller checks the result with `nginx -t`.
nginx_limits() {
    awk -v rlimit="$NGINX_RLIMIT_NOFILE" -v conns="$NGINX_WORKER_CONNECTIONS" "$NGINX_AWK_LIB"'
        function value(line,   c) {
            c = code(line)
            sub(/^[[:space:]]*[a-z_]+[[:space:]]+/, "", c)
            sub(/[[:space:]]*;.*$/, "", c)
            return c
        }
        function raised(line, name, want) {
            if (value(line) ~ /^[0-9]+$/ && value(line) + 0 >= want) return line
            return indent_of(line) name " " want ";"
        }
        # First pass: which directives exist, and where the events block is.
        NR == FNR {
            c = code($0)
            if (depth == 0 && c ~ /^[[:space:]]*worker_rlimit_nofile[[:space:]]/) has_rlimit = 1
            if (depth == 0 && c ~ /^[[:space:]]*events[[:space:]]*\{/) has_events = 1
            if (in_events && depth == 1 && c ~ /^[[:space:]]*worker_connections[[:space:]]/) has_conns = 1
            if (depth == 0 && c ~ /^[[:space:]]*events[[:space:]]*\{/) in_events = 1
            depth += braces($0)
            if (depth == 0) in_events = 0
            next
        }
        FNR == 1 { depth = 0; in_events = 0 }
        {
            c = code($0)
            if (depth == 0 && c ~ /^[[:space:]]*worker_rlimit_nofile[[:space:]]/) {
                print raised($0, "worker_rlimit_nofile", rlimit)
            } else if (in_events && depth == 1 && c ~ /^[[:space:]]*worker_connections[[:space:]]/) {
                print raised($0, "worker_connections", conns)
            } else if (depth == 0 && c ~ /^[[:space:]]*events[[:space:]]*\{/) {
                if (!has_rlimit) print "worker_rlimit_nofile " rlimit ";"
                print
                if (!has_conns) print "\tworker_connections " conns ";"
                in_events = 1
            } else {
                print
            }
            depth += braces($0)
            if (depth == 0) in_events = 0
        }
        END {
            if (!has_events) {
                if (!has_rlimit) print "worker_rlimit_nofile " rlimit ";"
                print "events {"
                print "\tworker_connections " conns ";"
                print "}"
            }
        }
    ' "$1" "$1"
}

# nginx_group FILE GROUP [--undo]: FILE (an nginx.conf) on stdout with nginx's worker
# processes in GROUP: the main-context `user NAME;` becomes `user NAME GROUP;` (with no user
# line, `user nobody GROUP;`: nobody is nginx's built-in user). A file that names GROUP
# already comes out unchanged. Status 3 when the line names another group: a worker process
# has one primary group, and taking it from another site is the operator's call. With
# --undo, the reverse (for uninstall.sh): `user NAME GROUP;` back to `user NAME;`.
nginx_group() {
    awk -v group="$2" -v undo="${3:-}" "$NGINX_AWK_LIB"'
        NR == FNR {
            if (depth == 0 && code($0) ~ /^[[:space:]]*user[[:space:]]/) has_user = 1
            depth += braces($0)
            next
        }
        FNR == 1 {
            depth = 0
            if (!has_user && undo == "") print "user nobody " group ";"
        }
        {
            c = code($0)
            if (depth == 0 && c ~ /^[[:space:]]*user[[:space:]]/) {
                sub(/^[[:space:]]*user[[:space:]]+/, "", c)
                sub(/[[:space:]]*;.*$/, "", c)
                n = split(c, w, /[[:space:]]+/)
                if (undo != "") {
                    print (n == 2 && w[2] == group) ? indent_of($0) "user " w[1] ";" : $0
                } else if (n == 1) {
                    print indent_of($0) "user " w[1] " " group ";"
                } else {
                    if (!(n == 2 && w[2] == group)) other = 1
                    print
                }
            } else {
                print
            }
            depth += braces($0)
        }
        END { if (other) exit 3 }
    ' "$1" "$1"
}

# Every pdfworker@N unit systemd knows of or has enabled, one name a line.
known_instances() {
    {
        systemctl list-units --all --plain --no-legend 'pdfworker@*.socket' 'pdfworker@*.service' |
            awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^pdfworker@/) { print $i; break } }'
        find /etc/systemd/system -path '*.wants/pdfworker@*' -printf '%f\n' 2>/dev/null
    } | sort -u
}

main() {
    local root instances bin changed=no code_changed=no units_changed=no nginx_changed=no
    root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
    cd "$root"

    instances=${PDFWORKER_INSTANCES:-2}
    [[ $instances =~ ^[1-9][0-9]*$ ]] || die "PDFWORKER_INSTANCES must be a positive number"
    [ "$(id -u)" -eq 0 ] || die "run as root"
    command -v systemctl >/dev/null 2>&1 || die "systemd is required"
    bin=target/release/pdfworker
    [ -x "$bin" ] || die "$bin not found; run 'cargo build --release' first (as your user)"

    if ! command -v nginx >/dev/null 2>&1; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx
    fi

    getent group pdfworker >/dev/null || groupadd --system pdfworker
    if ! getent passwd pdfworker >/dev/null; then
        useradd --system --gid pdfworker --home-dir /var/lib/pdfworker --no-create-home \
            --shell /usr/sbin/nologin --comment "pdfworker FastCGI worker" pdfworker
    fi
    # Earlier installs made www-data a member, which let every www-data application in;
    # nginx's workers now get the group from nginx.conf (below).
    if id -nG www-data 2>/dev/null | tr ' ' '\n' | grep -qx pdfworker; then
        gpasswd --delete www-data pdfworker >/dev/null
        echo "took www-data out of the group pdfworker (nginx's workers get it from nginx.conf)"
    fi

    # Running instances keep the old binary (renamed over, not rewritten) until restarted.
    put 0755 "$bin" /usr/local/bin/pdfworker && code_changed=yes
    put 0644 deploy/pdfworker@.service /etc/systemd/system/pdfworker@.service && units_changed=yes
    local had_socket=no
    [ -e /etc/systemd/system/pdfworker@.socket ] && had_socket=yes
    if put 0644 deploy/pdfworker@.socket /etc/systemd/system/pdfworker@.socket; then
        units_changed=yes
        # A running socket keeps its old settings; restarting it would drop the connections
        # queued in it, so that is left to the operator.
        [ "$had_socket" = yes ] &&
            echo "note: pdfworker@.socket changed; it applies when each socket is restarted" \
                "(systemctl restart pdfworker@N.socket, which restarts the service too)"
    fi
    [ "$units_changed" = yes ] && systemctl daemon-reload
    install -d -m 0755 /usr/local/share/doc/pdfworker
    put 0644 README.md /usr/local/share/doc/pdfworker/README.md && changed=yes

    # Report definitions: the shipped examples on a first install only; afterwards the folder
    # is the site's own. The demo database is made once, readable by the workers.
    if [ ! -d /etc/pdfworker/reports ]; then
        install -d -m 0755 /etc/pdfworker /etc/pdfworker/reports
        install -m 0644 reports/*.toml /etc/pdfworker/reports/
        /usr/local/bin/pdfworker demo-data --out /etc/pdfworker/reports/demo.sqlite
        chmod 0644 /etc/pdfworker/reports/demo.sqlite
    fi
    # What StateDirectory= makes at the first start; made here so check-config can judge it
    # as the user that will write it.
    [ -d /var/lib/pdfworker ] ||
        install -d -o pdfworker -g pdfworker -m 0750 /var/lib/pdfworker
    (cd / && runuser -u pdfworker -- /usr/local/bin/pdfworker check-config \
        --reports-dir /etc/pdfworker/reports --data-dir /var/lib/pdfworker) ||
        echo "warning: check-config found problems (above)" >&2

    # nginx's own limits and its workers' group, checked with the site as it is before the
    # file is replaced. Beside the original: nginx resolves relative includes from there.
    local conf=/etc/nginx/nginx.conf limited rc=0
    limited=$(mktemp)
    nginx_limits "$conf" >"$limited"
    nginx_group "$limited" pdfworker >"$conf.pdfworker-new" || rc=$?
    rm -f "$limited"
    if [ "$rc" -eq 3 ]; then
        rm -f "$conf.pdfworker-new"
        die "$conf gives nginx's workers a group of its own (its 'user' line); pdfworker's" \
            "socket and PDFs are open to the group pdfworker only: make that line" \
            "'user <name> pdfworker;' and run this again"
    fi
    [ "$rc" -eq 0 ] || die "could not edit $conf"
    if cmp -s "$conf.pdfworker-new" "$conf"; then
        rm -f "$conf.pdfworker-new"
    else
        nginx -q -t -c "$conf.pdfworker-new" ||
            die "nginx rejects $conf with raised limits and the group pdfworker (kept as" \
                "$conf.pdfworker-new); set worker_rlimit_nofile $NGINX_RLIMIT_NOFILE," \
                "worker_connections $NGINX_WORKER_CONNECTIONS and 'user <name> pdfworker;'" \
                "by hand"
        [ -e "$conf.pdfworker-orig" ] || cp -p "$conf" "$conf.pdfworker-orig"
        chmod --reference="$conf" "$conf.pdfworker-new"
        mv -f "$conf.pdfworker-new" "$conf"
        echo "raised nginx's limits and put its workers in the group pdfworker in $conf" \
            "(the previous file: $conf.pdfworker-orig)"
        nginx_changed=yes
    fi

    # The site, with the two example upstream lines replaced by one per instance.
    local site=/etc/nginx/sites-available/pdfworker generated
    generated=$(mktemp)
    awk -v n="$instances" '
        /^[[:space:]]*server unix:\/run\/pdfworker\/[0-9]+\.sock;/ {
            if (!done) {
                for (i = 1; i <= n; i++) printf "    server unix:/run/pdfworker/%d.sock;\n", i
                done = 1
            }
            next
        }
        { print }
    ' nginx/pdfworker.conf >"$generated"
    put 0644 "$generated" "$site" && nginx_changed=yes
    rm -f "$generated"
    if [ "$(readlink /etc/nginx/sites-enabled/pdfworker || true)" != "$site" ]; then
        ln -sfn "$site" /etc/nginx/sites-enabled/pdfworker
        nginx_changed=yes
    fi
    if [ -L /etc/nginx/sites-enabled/default ] &&
        [ "$(readlink -f /etc/nginx/sites-enabled/default)" = /etc/nginx/sites-available/default ]; then
        echo "disabling nginx's stock default site (it also listens on port 80)"
        rm -f /etc/nginx/sites-enabled/default
        nginx_changed=yes
    fi
    nginx -q -t

    local i n
    for ((i = 1; i <= instances; i++)); do
        systemctl enable --quiet "pdfworker@$i.socket" "pdfworker@$i.service"
        systemctl is-active --quiet "pdfworker@$i.socket" || systemctl start "pdfworker@$i.socket"
        if ! systemctl is-active --quiet "pdfworker@$i.service"; then
            systemctl start "pdfworker@$i.service"
            echo "started pdfworker@$i"
            changed=yes
        elif [ "$code_changed" = yes ] || [ "$units_changed" = yes ]; then
            # Returns once the new process says READY=1: then the next instance goes.
            systemctl restart "pdfworker@$i.service"
            echo "restarted pdfworker@$i"
        fi
    done

    # Sockets an older unit made for the group www-data go to the group pdfworker in place
    # (checked at each connect): nginx's workers, now in pdfworker and no longer reaching
    # www-data's sockets, could not connect otherwise, and restarting a socket would drop
    # the connections waiting in it.
    local sock
    for sock in /run/pdfworker/*.sock; do
        [ -S "$sock" ] || continue
        if [ "$(stat -c %G "$sock")" != pdfworker ]; then
            chgrp pdfworker "$sock"
            echo "gave $sock to the group pdfworker"
        fi
    done

    # nginx before the instances above N stop, so that it no longer sends them requests
    # (a connection to a stopped socket would activate the instance again).
    systemctl enable --quiet nginx
    if [ "$nginx_changed" = yes ]; then
        systemctl reload-or-restart nginx
        echo "reloaded nginx"
    elif ! systemctl is-active --quiet nginx; then
        systemctl start nginx
        echo "started nginx"
        changed=yes
    fi

    # Fewer instances than last time: stop and disable the rest, socket and service at once.
    for n in $(known_instances | sed -n 's/^pdfworker@\([0-9][0-9]*\)\.[a-z]*$/\1/p' | sort -un); do
        if [ "$n" -gt "$instances" ]; then
            systemctl disable --now --quiet "pdfworker@$n.socket" "pdfworker@$n.service"
            echo "stopped and disabled pdfworker@$n"
            changed=yes
        fi
    done

    echo
    if [ "$changed$code_changed$units_changed$nginx_changed" = nononono ]; then
        echo "nothing to do: $instances instance(s) installed and running"
    else
        echo "installed: $instances instance(s); status: systemctl status 'pdfworker@*'"
    fi
    echo "logs: journalctl -u 'pdfworker@*' -f"
}

# Sourced (uninstall.sh, tests, or to try the nginx.conf edits on a copy): define the
# functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
