# shellcheck shell=bash
# Helpers shared by deploy/serve and deploy/test. Sourced, not run.

# The local nginx template puts paths into its replacement strings; bash 5.2 would treat an
# `&` in them as "the matched text" (patsub_replacement). Paths are data, not patterns.
shopt -u patsub_replacement 2>/dev/null || true

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

note() {
    printf '%s\n' "$*" >&2
}

# Print a banner for one step of a script.
step() {
    printf '\n==> %s\n' "$*"
}

# Debian puts nginx in /usr/sbin, which is not on an ordinary user's PATH.
have() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

find_nginx() {
    local p
    for p in "$(command -v nginx 2>/dev/null)" /usr/sbin/nginx /sbin/nginx; do
        if [ -n "$p" ] && [ -x "$p" ]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (run as root, or install sudo)"
    fi
}

# apt_ensure COMMAND:PACKAGE ...
# Installs, with apt-get and without questions, each PACKAGE whose COMMAND is missing.
apt_ensure() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        if ! have "$cmd"; then
            case " ${missing[*]} " in
                *" $pkg "*) ;;
                *) missing+=("$pkg") ;;
            esac
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    step "installing with apt-get: ${missing[*]}"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: ${missing[*]}"
    # Debian starts a freshly installed nginx on 0.0.0.0:80. We only want the binary, so
    # forbid service starts for the duration of the install (invoke-rc.d(8), "policy-rc.d")
    # unless the machine already has a policy of its own.
    local policy=/usr/sbin/policy-rc.d made_policy=no
    if ! as_root test -e "$policy"; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 0755 $policy"
        made_policy=yes
        trap 'as_root rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    if [ "$rc" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    fi
    if [ "$made_policy" = yes ]; then
        as_root rm -f "$policy"
        trap - EXIT
    fi
    [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc) installing: ${missing[*]}"
}

# render_local_conf OUT PREFIX LISTEN FILES_DIR GZIP SOCKET...
# Fills in nginx/local.conf.in (relative to the repo root, the current directory) and
# creates PREFIX. The Rust integration tests do the same substitution on their own.
render_local_conf() {
    local out=$1 prefix=$2 listen=$3 files_dir=$4 gzip=$5
    shift 5
    local servers="" sock user_line="" conf
    for sock in "$@"; do
        [ -n "$servers" ] && servers+=$'\n        '
        servers+="server unix:$sock;"
    done
    # As root, nginx would run its workers as `nobody`; see the template.
    [ "$(id -u)" -eq 0 ] && user_line="user root;"

    conf=$(<nginx/local.conf.in)
    conf=${conf//@PREFIX@/$prefix}
    conf=${conf//@LISTEN@/$listen}
    conf=${conf//@UPSTREAM_SERVERS@/$servers}
    conf=${conf//@FILES_DIR@/$files_dir}
    conf=${conf//@USER_LINE@/$user_line}
    conf=${conf//@GZIP@/$gzip}
    if [[ $conf =~ @[A-Z_]+@ ]]; then
        die "nginx/local.conf.in has a placeholder this script does not know: ${BASH_REMATCH[0]}"
    fi
    mkdir -p "$prefix"
    printf '%s\n' "$conf" >"$out"
}
