#!/usr/bin/env bash
# bench/table.sh FIGURES.tsv yes|no — the one markdown table of bench/run (issue #4).
# FIGURES.tsv holds "key<TAB>value" lines written by bench/run; "yes" adds the PHP-FPM column.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: bench/table.sh FIGURES.tsv yes|no" >&2; exit 2; }

awk -F'\t' -v peer="$2" '
{ v[$1] = $2 }
function has(k) { return (k in v) && v[k] != "" && v[k] != "-" }
function f(x, d) { return sprintf("%." d "f", x) }
function ms(k) { return has(k) ? f(v[k], (v[k] < 10 ? 2 : 1)) : "-" }
function w(s, i,   a) { split(s, a, " "); return a[i] }   # i-th word of "median min max n"
function fmt_int(x,   s, r) { s = sprintf("%d", x + 0.5); r = ""
    while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
    return s r }
function lat(k) {   # "p50 / p99 (p99 over runs: min–max; n, runs)"
    if (!has(k ".p99")) return "-"
    return ms(k ".p50") " / " ms(k ".p99") " (p99 " ms(k ".p99min") "–" ms(k ".p99max") "; n=" v[k ".n"] ", " v[k ".runs"] " runs)"
}
function yes(ok) { return ok ? "**yes**" : "no" }
function row(name, a, b, ratio, target, met) {
    if (peer == "yes") printf "| %s | %s | %s | %s | %s | %s |\n", name, a, b, ratio, target, met
    else printf "| %s | %s | %s | %s |\n", name, a, target, met
}
function times(a, b) { return (a > 0 && b > 0) ? f(a / b, (a / b < 10 ? 2 : 0)) "×" : "-" }
END {
    php = (peer == "yes")
    if (php) { print "| row | pdfworker | PHP-FPM | ratio | target | met? |"; print "|---|---|---|---|---|---|" }
    else     { print "| row | pdfworker | target | met? |"; print "|---|---|---|---|" }

    # 1: POST -> 303
    row("1 POST → 303, idle pool: p50 / p99 ms", lat("r1_idle_pw"), lat("r1_idle_php"),
        php ? "PHP p99 / ours: " times(v["r1_idle_php.p99"], v["r1_idle_pw.p99"]) : "-", "—", "—")
    t = "p99 ≤ 5 ms"
    row("1 POST → 303 while every render slot is busy: p50 / p99 ms", lat("r1_busy_pw") " valid rounds " v["r1_busy_pw.valid"],
        lat("r1_busy_php"),
        php ? "PHP p99 / ours: " times(v["r1_busy_php.p99"], v["r1_busy_pw.p99"]) : "-",
        t, yes(has("r1_busy_pw.p99") && v["r1_busy_pw.p99"] <= 5))

    # 2: status page during 8 renders
    row("2 status page while 8 large renders run: p50 / p99 ms", lat("r2_pw"), lat("r2_php"),
        php ? "PHP p99 / ours: " times(v["r2_php.p99"], v["r2_pw.p99"]) : "-",
        "p99 ≤ 10 ms", yes(has("r2_pw.p99") && v["r2_pw.p99"] <= 10))

    # 3: kept-alive connection after an early finish
    a = has("r3_pw.p50") ? ms("r3_pw.p50") " / " ms("r3_pw.max") " (n=" v["r3_pw.n"] "; any of the 5 GETs: max " ms("r3_pw.anyget_max") ")" : "-"
    b = has("r3_php.p50") ? ms("r3_php.p50") " / " ms("r3_php.max") " (n=" v["r3_php.n"] ")" : "-"
    row("3 next request on the same kept-alive FastCGI connection after an early finish: median / max ms", a, b,
        php ? "PHP max / ours: " times(v["r3_php.max"], v["r3_pw.max"]) : "-",
        "≤ 5 ms (max)", yes(has("r3_pw.max") && v["r3_pw.max"] <= 5))

    # 4: throughput
    rp = "r4_pw_status"; rh = "r4_php_status"
    a = has(rp) ? fmt_int(v[rp]) " (" fmt_int(v[rp ".min"]) "–" fmt_int(v[rp ".max"]) ")" : "-"
    b = has(rh) ? fmt_int(v[rh]) " (" fmt_int(v[rh ".min"]) "–" fmt_int(v[rh ".max"]) ")" : "-"
    row("4 status page throughput, req/s (wrk -t2 -c32), median (min–max)", a, b,
        php ? "ours / PHP: " times(v[rp], v[rh]) : "-", "≥ 3× PHP", php ? yes(v[rp] >= 3 * v[rh]) : "n/a (no peer)")
    cp = "r4_pw_ceiling"; ch = "r4_php_ceiling"
    a = has(cp) ? fmt_int(v[cp]) " (" fmt_int(v[cp ".min"]) "–" fmt_int(v[cp ".max"]) "), nginx worker_processes 2" : "-"
    b = has(ch) ? fmt_int(v[ch]) " (" fmt_int(v[ch ".min"]) "–" fmt_int(v[ch ".max"]) "), nginx worker_processes 2" : "-"
    row("4 ceiling: nginx `return 200` on the same nginx, req/s", a, b, php ? "ours / PHP: " times(v[cp], v[ch]) : "-", "—", "—")
    kb = "r4_pw_bare"
    a = has(kb) ? fmt_int(v[kb]) " (" fmt_int(v[kb ".min"]) "–" fmt_int(v[kb ".max"]) "), " v["pw_workers"] " processes" : "-"
    row("4 floor: a FastCGI responder that does no work (examples/bare_responder.rs) behind the same nginx, req/s", a, "-", "-", "—", "—")
    kc = "r4_pw_c"
    if (has(kc)) {
        a = fmt_int(v[kc]) " (" fmt_int(v[kc ".min"]) "–" fmt_int(v[kc ".max"]) "), " v["pw_workers"] " processes"
        row("4 floor in C: the same no-work responder on libfcgi (bench/noop_fcgi.c) behind the same nginx, req/s", a, "-", "-", "—", "—")
    }
    # Shares: the median of the per-round shares (each round loads the page and the ceiling
    # back to back), min–max over the rounds.
    sp = "r4_pw_share"; sh = "r4_php_share"; sb = "r4_pw_bare_share"; sc = "r4_pw_c_share"
    a = has(sp) ? f(100 * w(v[sp], 1), 0) "% (" f(100 * w(v[sp], 2), 0) "–" f(100 * w(v[sp], 3), 0) "%, " w(v[sp], 4) " rounds)" : "-"
    if (has(sb)) a = a "; the no-work responder: " f(100 * w(v[sb], 1), 0) "% (" f(100 * w(v[sb], 2), 0) "–" f(100 * w(v[sb], 3), 0) "%)"
    if (has(sc)) a = a "; in C on libfcgi: " f(100 * w(v[sc], 1), 0) "% (" f(100 * w(v[sc], 2), 0) "–" f(100 * w(v[sc], 3), 0) "%)"
    b = has(sh) ? f(100 * w(v[sh], 1), 0) "% (" f(100 * w(v[sh], 2), 0) "–" f(100 * w(v[sh], 3), 0) "%)" : "-"
    if (has("r4_pw_status.app_us")) {
        c = "status page: worker " f(v["r4_pw_status.app_us"], 1) ", nginx " f(v["r4_pw_status.nginx_us"], 1)
        if (has("r4_pw_bare.app_us")) c = c "; no-work responder: itself " f(v["r4_pw_bare.app_us"], 1) ", nginx " f(v["r4_pw_bare.nginx_us"], 1)
        if (has("r4_pw_c.app_us")) c = c "; in C: itself " f(v["r4_pw_c.app_us"], 1) ", nginx " f(v["r4_pw_c.nginx_us"], 1)
        if (has("r4_pw_ceiling.nginx_us")) c = c "; `return 200`: nginx " f(v["r4_pw_ceiling.nginx_us"], 1)
        row("4 CPU per request, µs (from /proc, median of the rounds)", c, "-", "-", "—", "—")
    }
    m35 = has(sp) && w(v[sp], 1) >= 0.35; m40 = has(sp) && w(v[sp], 1) >= 0.40
    row("4 status page as a share of `return 200` on the same nginx, median of the per-round shares (min–max)", a, b, "—",
        "≥ 35% (#4), ≥ 40% (#8)", "#4 " yes(m35) ", #8 " yes(m40))

    # 5: render speed and memory
    n5 = split("100 1000 5000", P, " ")
    for (i = 1; i <= n5; i++) {
        p = P[i]; kp = "r5_pw_" p; kh = "r5_php_" p
        if (!has(kp ".sec")) continue
        sp = w(v[kp ".sec"], 1); pgp = v[kp ".pages"]
        a = fmt_int(pgp / sp) " pages/s, " fmt_int(p * 40 / sp) " rows/s (" f(sp, 3) " s, " f(w(v[kp ".sec"], 2), 3) "–" f(w(v[kp ".sec"], 3), 3) ", n=" w(v[kp ".sec"], 4) ")"
        b = "-"; r = "-"; m = "n/a (no peer)"
        if (has(kh ".sec")) {
            sh = w(v[kh ".sec"], 1); pgh = v[kh ".pages"]
            b = fmt_int(pgh / sh) " pages/s, " fmt_int(p * 40 / sh) " rows/s (" f(sh, 3) " s, " f(w(v[kh ".sec"], 2), 3) "–" f(w(v[kh ".sec"], 3), 3) ", n=" w(v[kh ".sec"], 4) ")"
            r = "ours / FPDF (pages/s): " times(pgp / sp, pgh / sh)
            m = yes(pgp / sp >= 3 * pgh / sh)
        }
        row("5 render " fmt_int(p) " pages (" fmt_int(p * 40) " rows; pages made: " pgp (has(kh ".pages") ? " / " v[kh ".pages"] : "") ")", a, b, r, "≥ 3× FPDF", m)
    }
    if (has("r5_pw_5000.rss_kb") && has("r5_pw_100.rss_kb")) {
        kpp = (v["r5_pw_5000.rss_kb"] - v["r5_pw_100.rss_kb"]) / (v["r5_pw_5000.pages"] - v["r5_pw_100.pages"])
        a = f(v["r5_pw_5000.rss_kb"] / 1024, 0) " MiB at 5,000 pages; " f(kpp, 1) " KiB/page"
        b = "-"; r = "-"; m = "n/a (no peer)"
        if (has("r5_php_5000.rss_kb") && has("r5_php_100.rss_kb")) {
            kph = (v["r5_php_5000.rss_kb"] - v["r5_php_100.rss_kb"]) / (v["r5_php_5000.pages"] - v["r5_php_100.pages"])
            b = f(v["r5_php_5000.rss_kb"] / 1024, 0) " MiB at 5,000 pages; " f(kph, 1) " KiB/page"
            r = "ours / FPDF per page: " times(kpp, kph)
            m = yes(kpp <= kph)
        }
        row("5 render memory: peak RSS of the process; per page = (RSS@5,000 − RSS@100) / (pages@5,000 − pages@100)", a, b, r, "≤ FPDF per page", m)
    }

    # 6: pool RSS
    a = has("r6_pw_idle_kb") ? f(v["r6_pw_idle_kb"] / 1024, 1) " MiB (" v["pw_workers"] " workers)" : "-"
    b = has("r6_php_idle_kb") ? f(v["r6_php_idle_kb"] / 1024, 1) " MiB (master + 4 children)" : "-"
    row("6 pool RSS idle (after warm-up)", a, b, php ? "ours / PHP: " times(v["r6_pw_idle_kb"], v["r6_php_idle_kb"]) : "-",
        "≤ 1/3 of PHP", php ? yes(v["r6_pw_idle_kb"] * 3 <= v["r6_php_idle_kb"]) : "n/a (no peer)")
    a = has("r6_pw_peak_kb") ? f(v["r6_pw_peak_kb"] / 1024, 1) " MiB" : "-"
    b = has("r6_php_peak_kb") ? f(v["r6_php_peak_kb"] / 1024, 1) " MiB" : "-"
    row("6 pool RSS, peak during 4 concurrent large renders", a, b, php ? "ours / PHP: " times(v["r6_pw_peak_kb"], v["r6_php_peak_kb"]) : "-", "—", "—")
}' "$1"
