#!/usr/bin/env bash
# Remove what deploy/install.sh installed. Run as root:
#
#   sudo ./deploy/uninstall.sh           # keep the data and the configuration
#   sudo ./deploy/uninstall.sh --purge   # remove them too
#
# Always: takes the nginx site `pdfworker` out and reloads nginx (so it stops sending
# requests), stops and disables every pdfworker@N socket and service, and removes the units,
# the binary and the README copy.
# Kept unless --purge: the jobs and PDFs in /var/lib/pdfworker, the report definitions and
# secrets in /etc/pdfworker, drop-ins in /etc/systemd/system/pdfworker@.service.d, and the
# user and group `pdfworker` that own them (so a later install finds everything as it was).
# nginx.conf: its `user` line loses the group pdfworker install.sh gave nginx's workers.
# Never touched: nginx itself, the limits install.sh raised in /etc/nginx/nginx.conf (the
# file before the first install is /etc/nginx/nginx.conf.pdfworker-orig) and Debian's
# default site, which install.sh disabled.
#
# Running it again succeeds and changes nothing.
set -euo pipefail

# install.sh's functions (nginx_group), first: the ones defined below take precedence over
# its namesakes (known_instances there lists unit names, here instance numbers).
# shellcheck source=deploy/install.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/install.sh"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# Every pdfworker@N instance number systemd knows of or has enabled.
known_instances() {
    {
        systemctl list-units --all --plain --no-legend 'pdfworker@*.socket' 'pdfworker@*.service' |
            awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^pdfworker@/) { print $i; break } }'
        find /etc/systemd/system -path '*.wants/pdfworker@*' -printf '%f\n' 2>/dev/null
    } | sed -n 's/^pdfworker@\([0-9][0-9]*\)\.[a-z]*$/\1/p' | sort -un
}

# remove PATH...: rm -rf each PATH that exists, saying so.
remove() {
    local p
    for p in "$@"; do
        if [ -e "$p" ] || [ -L "$p" ]; then
            rm -rf -- "$p"
            echo "removed $p"
        fi
    done
}

purge=no
for arg in "$@"; do
    case $arg in
        --purge) purge=yes ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$arg' (see --help)" ;;
    esac
done
[ "$(id -u)" -eq 0 ] || die "run as root"
command -v systemctl >/dev/null 2>&1 || die "systemd is required"

# nginx first: once it no longer routes to the instances, stopping them fails no request,
# and no connection activates a socket again.
nginx_changed=no
if [ -e /etc/nginx/sites-enabled/pdfworker ] || [ -L /etc/nginx/sites-enabled/pdfworker ] ||
    [ -e /etc/nginx/sites-available/pdfworker ]; then
    remove /etc/nginx/sites-enabled/pdfworker /etc/nginx/sites-available/pdfworker
    nginx_changed=yes
fi
# install.sh's nginx_group, undone (a group --purge may delete next).
conf=/etc/nginx/nginx.conf
if [ -f "$conf" ] && ! nginx_group "$conf" pdfworker --undo | cmp -s - "$conf"; then
    nginx_group "$conf" pdfworker --undo >"$conf.pdfworker-new"
    chmod --reference="$conf" "$conf.pdfworker-new"
    mv -f "$conf.pdfworker-new" "$conf"
    echo "took nginx's workers out of the group pdfworker in $conf"
    nginx_changed=yes
fi
if [ "$nginx_changed" = yes ] && command -v nginx >/dev/null 2>&1 &&
    systemctl is-active --quiet nginx; then
    nginx -q -t
    systemctl reload nginx
    echo "reloaded nginx"
fi

# Each instance's socket and service in one transaction. A stopping service drains: its
# requests and renders get the unit's grace, unfinished renders go back to the queue on disk.
for n in $(known_instances); do
    systemctl disable --now --quiet "pdfworker@$n.socket" "pdfworker@$n.service"
    echo "stopped and disabled pdfworker@$n"
done

units_removed=no
if [ -e /etc/systemd/system/pdfworker@.service ] || [ -e /etc/systemd/system/pdfworker@.socket ]; then
    remove /etc/systemd/system/pdfworker@.service /etc/systemd/system/pdfworker@.socket
    units_removed=yes
fi
remove /usr/local/bin/pdfworker /usr/local/bin/pdfworker.new /usr/local/share/doc/pdfworker
# systemd made it for the sockets; it is empty once they are gone (and on tmpfs anyway).
[ -d /run/pdfworker ] && rmdir --ignore-fail-on-non-empty /run/pdfworker

if [ "$purge" = yes ]; then
    if [ -d /etc/systemd/system/pdfworker@.service.d ]; then
        remove /etc/systemd/system/pdfworker@.service.d
        units_removed=yes
    fi
    remove /var/lib/pdfworker /etc/pdfworker
    # Out of the group first (installs before nginx.conf named it made www-data a member),
    # or userdel keeps the group for its other member.
    if id -nG www-data 2>/dev/null | tr ' ' '\n' | grep -qx pdfworker; then
        gpasswd --delete www-data pdfworker >/dev/null
    fi
    if getent passwd pdfworker >/dev/null; then
        userdel pdfworker
        echo "removed the user pdfworker"
    fi
    # userdel removes the group of the same name on Debian; not where USERGROUPS_ENAB is no.
    if getent group pdfworker >/dev/null; then
        groupdel pdfworker
        echo "removed the group pdfworker"
    fi
fi
if [ "$units_removed" = yes ]; then
    systemctl daemon-reload
    # Forget failed instances, or `systemctl --failed` lists them until the next boot.
    systemctl reset-failed 'pdfworker@*' 2>/dev/null || true
fi

echo
if [ "$purge" = yes ]; then
    echo "pdfworker removed, with its data and configuration"
else
    echo "pdfworker removed; kept (remove them with --purge):"
    for p in /var/lib/pdfworker /etc/pdfworker /etc/systemd/system/pdfworker@.service.d; do
        [ -e "$p" ] && echo "  $p"
    done
    getent passwd pdfworker >/dev/null && echo "  the user and group pdfworker"
fi
echo "nginx keeps its raised limits in /etc/nginx/nginx.conf; Debian's default site stays" \
    "disabled (ln -s ../sites-available/default /etc/nginx/sites-enabled/ brings it back)"
