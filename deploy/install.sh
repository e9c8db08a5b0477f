#!/usr/bin/env bash
# Install a release build of pdfworker system-wide on Debian and start N instances behind
# the system nginx. Run as root from a checkout, after `cargo build --release`:
#
#   sudo PDFWORKER_INSTANCES=2 ./deploy/install.sh
#
# What it does (run it again to upgrade; it is idempotent):
#   - installs nginx if missing;
#   - creates the system user and group `pdfworker`, and adds www-data (nginx) to the group
#     so nginx can read the finished PDFs;
#   - copies the binary to /usr/local/bin, the units to /etc/systemd/system, README to
#     /usr/local/share/doc/pdfworker;
#   - installs nginx/pdfworker.conf as the site `pdfworker` with one upstream line per
#     instance, and disables Debian's stock `default` site (both want port 80);
#   - enables and (re)starts pdfworker@1..N (socket + service), stops instances above N;
#   - checks the nginx config and reloads nginx.
set -euo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$root"

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

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
# nginx workers pick up the new group at their next start (the reload below).
usermod --append --groups pdfworker www-data

# Instances running now (from an earlier install), to stop those above N further down.
running=$(systemctl list-units --plain --no-legend --state=active 'pdfworker@*.service' |
    awk '{print $1}')
# Copy, then rename: running instances keep the old file until their restart below.
install -m 0755 "$bin" /usr/local/bin/pdfworker.new
mv -f /usr/local/bin/pdfworker.new /usr/local/bin/pdfworker
install -m 0644 deploy/pdfworker@.socket deploy/pdfworker@.service /etc/systemd/system/
# Report definitions: the shipped examples on a first install only; afterwards the folder is
# the site's own. The demo database is made once, readable by the workers.
if [ ! -d /etc/pdfworker/reports ]; then
    install -d -m 0755 /etc/pdfworker /etc/pdfworker/reports
    install -m 0644 reports/*.toml /etc/pdfworker/reports/
    /usr/local/bin/pdfworker demo-data --out /etc/pdfworker/reports/demo.sqlite
    chmod 0644 /etc/pdfworker/reports/demo.sqlite
fi
/usr/local/bin/pdfworker check-config --reports-dir /etc/pdfworker/reports \
    --data-dir /var/lib/pdfworker || echo "warning: check-config found problems (above)" >&2
install -d -m 0755 /usr/local/share/doc/pdfworker
[ -f README.md ] && install -m 0644 README.md /usr/local/share/doc/pdfworker/README.md
systemctl daemon-reload

# The site, with the two example upstream lines replaced by one per instance.
site=/etc/nginx/sites-available/pdfworker
awk -v n="$instances" '
    /^[[:space:]]*server unix:\/run\/pdfworker\/[0-9]+\.sock;/ {
        if (!done) {
            for (i = 1; i <= n; i++) printf "    server unix:/run/pdfworker/%d.sock;\n", i
            done = 1
        }
        next
    }
    { print }
' nginx/pdfworker.conf >"$site.new"
mv -f "$site.new" "$site"
ln -sfn "$site" /etc/nginx/sites-enabled/pdfworker
if [ -L /etc/nginx/sites-enabled/default ] &&
    [ "$(readlink -f /etc/nginx/sites-enabled/default)" = /etc/nginx/sites-available/default ]; then
    echo "disabling nginx's stock default site (it also listens on port 80)"
    rm -f /etc/nginx/sites-enabled/default
fi
nginx -t

for ((i = 1; i <= instances; i++)); do
    systemctl enable --now "pdfworker@$i.socket"
    systemctl enable "pdfworker@$i.service"
    # restart, not start: an upgrade must load the new binary.
    systemctl restart "pdfworker@$i.service"
done
# Fewer instances than last time: stop and disable the rest.
for unit in $running; do
    n=${unit#pdfworker@}
    n=${n%.service}
    if [[ $n =~ ^[0-9]+$ ]] && [ "$n" -gt "$instances" ]; then
        systemctl disable --now "pdfworker@$n.service" "pdfworker@$n.socket"
    fi
done

systemctl reload-or-restart nginx
systemctl enable nginx

echo
echo "installed: $instances instance(s); status: systemctl status 'pdfworker@*'"
echo "logs: journalctl -u 'pdfworker@*' -f"
