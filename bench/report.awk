# The tables of bench/report.sh (awk -F'\t' -f bench/report.awk RESULTS.tsv).
function r2(x) { return sprintf("%.2f", x) }
function num(x) { return x + 0 }
function commas(n,   s, neg) {
    s = sprintf("%d", n + 0.5); neg = ""
    if (s ~ /^-/) { neg = "-"; s = substr(s, 2) }
    while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
    return neg s
}
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
    n++
    for (k in col) v[n, k] = $col[k]
    if ($col["server"] == "ceiling") {
        c = $col["conns"]; crps[c] += $col["rps"]; ccpu[c] += $col["cpu_us_per_req"]; cn[c]++
    }
}
END {
    lost = 0
    for (i = 1; i <= n; i++) if (v[i, "status"] ~ /^LOST/) lost++
    if (lost) {
        print "**LOST: " lost " run(s) published fewer deliveries than they answered 200, after the bridge drained. See the `check` column.**\n"
    }
    print "### The ceiling: nginx, 1 worker, Lua reading the body\n"
    print "| connections | round | req/s | p50 | p99 | errors / non-200 | CPU per request | peak RSS |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) if (v[i, "server"] == "ceiling")
        printf "| %s | %s | %s | %s ms | %s ms | %s / %s | %s µs | %s MB |\n", v[i, "conns"], \
            v[i, "note"], commas(v[i, "rps"]), v[i, "p50_ms"], v[i, "p99_ms"], v[i, "errors"], \
            v[i, "non2xx"], v[i, "cpu_us_per_req"], v[i, "peak_rss_mb"]
    for (c in cn) { crps[c] /= cn[c]; ccpu[c] /= cn[c] }
    print "\n### hookbridge, with each figure's ratio to the ceiling at the same connections\n"
    print "CPU per request counts all of hookbridge's threads, from the start of the run until the sink had published everything (`drain`). `published` is counted at the sink: lines in the file, `XLEN` of the stream, the topic's high watermark. `broker` is the CPU per request of redis-server or of the Kafka (mock) broker; `others` the cores used by the rest of the machine (other agents) while wrk ran.\n"
    print "| sink | ack | workers | conns | req/s | × ceiling | p50 | p99 | errors / non-200 | CPU per request | × ceiling | peak RSS | answered 200 | published | check | drain | broker | others |"
    print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        if (v[i, "server"] == "ceiling") continue
        c = v[i, "conns"]
        rr = (c in crps) && crps[c] ? r2(v[i, "rps"] / crps[c]) : "-"
        cr = (c in ccpu) && ccpu[c] ? r2(v[i, "cpu_us_per_req"] / ccpu[c]) : "-"
        sink = v[i, "sink"]
        if (v[i, "server"] != "hookbridge") sink = sink " (" substr(v[i, "server"], 12) ")"
        st = v[i, "status"]; if (st ~ /^LOST/) st = "**" st "**"
        printf "| %s | %s | %s | %s | %s | %s | %s ms | %s ms | %s / %s | %s µs | %s | %s MB | %s | %s | %s | %s s | %s µs | %s |\n", \
            sink, v[i, "ack"], v[i, "workers"], c, commas(v[i, "rps"]), rr, v[i, "p50_ms"], \
            v[i, "p99_ms"], v[i, "errors"], v[i, "non2xx"], v[i, "cpu_us_per_req"], cr, \
            v[i, "peak_rss_mb"], commas(v[i, "answered_200"]), commas(v[i, "published"]), st, \
            v[i, "drain_s"], v[i, "broker_cpu_us_per_req"], v[i, "others_cores"]
    }

    # Issue 8 targets: one line each, with the worst case.
    print "\n### Issue 8 targets in this run\n"
    t1 = 1; t1w = ""; t1seen = 0; t2 = 1; t2w = ""; t2seen = 0
    t4 = 1; t4w = ""; t4seen = 0; t5 = 1
    for (i = 1; i <= n; i++) {
        if (v[i, "server"] == "ceiling") continue
        c = v[i, "conns"]; id = v[i, "sink"] "/" v[i, "ack"] "/w" v[i, "workers"] "/c" c
        if (v[i, "server"] == "hookbridge" && v[i, "ack"] == "durable" && c == 32 && \
            (v[i, "sink"] == "file" || v[i, "sink"] == "kafka") && (c in crps)) {
            t1seen = 1
            q = v[i, "rps"] / crps[c]
            if (q < 0.6 || num(v[i, "p99_ms"]) > 3) { t1 = 0; t1w = t1w " " id " (" r2(q) "×, p99 " v[i, "p99_ms"] " ms)" }
        }
        if ((c in ccpu) && ccpu[c]) {
            t2seen = 1
            q = v[i, "cpu_us_per_req"] / ccpu[c]
            if (q > 2) { t2 = 0; if (q > t2max) { t2max = q; t2w = id } }
        }
        if (c == 256) {
            t4seen = 1
            if (num(v[i, "errors"]) + num(v[i, "non2xx"]) > 0 || num(v[i, "peak_rss_mb"]) > 64) {
                t4 = 0; t4w = t4w " " id " (" v[i, "errors"] "/" v[i, "non2xx"] " errors, " v[i, "peak_rss_mb"] " MB)"
            }
        }
        if (v[i, "status"] ~ /^LOST/) { t5 = 0; t5w = t5w " " id }
    }
    ok = "**met**"; no = "**not met**"; na = "not measured"
    print "- durable, 32 connections, file and Kafka: ≥ 0.6 × the ceiling's req/s and p99 ≤ 3 ms: " \
        (t1seen ? (t1 ? ok : no ":" t1w) : na)
    print "- CPU per request ≤ 2 × the ceiling's: " (t2seen ? (t2 ? ok : no " (worst " r2(t2max) "×, " t2w ")") : na)
    print "- 256 connections: no errors, RSS ≤ 64 MB: " (t4seen ? (t4 ? ok : no ":" t4w) : na)
    print "- nothing acknowledged is lost: " (t5 ? ok : no ":" t5w)
}
