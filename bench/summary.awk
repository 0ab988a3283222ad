# Tables, with the targets of issues 3, 4, 9, 13 and 14, from the raw
# lines of bench/run.sh (awk -f bench/summary.awk bench/results/run-*.txt).
# Only the last run in the file counts.  Each figure is the median of its
# repeats; every ratio is taken against a server measured in the same run.
# The last table lists every target of the run, met or not, and those
# that could not be judged (a reference not installed) with the reason.

function med(k,    n, i, j, t, v) {
	n = cnt[k]
	if (n == 0)
		return ""
	for (i = 1; i <= n; i++)
		v[i] = val[k, i]
	for (i = 2; i <= n; i++)	# insertion sort: n is tiny
		for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function num(x,    s, r) {	# 1234567.8 -> 1,234,568
	if (x == "")
		return "-"
	s = sprintf("%.0f", x); r = ""
	while (length(s) > 3) {
		r = "," substr(s, length(s) - 2) r
		s = substr(s, 1, length(s) - 3)
	}
	return s r
}
function rat(a, b) {
	if (a == "" || b == "" || b + 0 == 0)
		return "-"
	return sprintf("%.2f", a / b)
}
function us(cpu, rate) {	# "server cpu share (cpu us per operation)"
	if (cpu == "" || rate == "" || rate + 0 == 0)
		return "-"
	return sprintf("%.2f (%.1f)", cpu, cpu * 1e6 / rate)
}
function verdict(ok) { return ok ? "met" : "NOT met" }
# judge ROW FIGURE REFERENCE RATIO TARGET OK: one target, counted and kept
# for the closing table.  unjudged ROW TARGET WHY: one that could not be.
function judge(row, fig, ref, r, tgt, ok) {
	ntargets++
	nmet += ok
	tl[++ntl] = sprintf("| %s | %s | %s | %s | %s | %s |", row, fig, ref,
	    r, tgt, verdict(ok))
	return ok
}
function unjudged(row, fig, tgt, why) {
	nunjudged++
	tl[++ntl] = sprintf("| %s | %s | - | - | %s | not judged: %s |", row,
	    fig, tgt, why)
}
# pmed SC A B F: the median over repeats of A's F / B's F in the same
# repeat, F being a field, "us" (server CPU us per message) or "ushs"
# (per handshake).  Two
# servers measured a few seconds apart see the same machine, where
# medians taken apart can pair a quiet minute with a busy one: on this
# machine one row's msgs/s moved 2x between repeats at the same CPU.
function per(sc, sv, f, r,    c, x) {
	if (f != "us" && f != "ushs")
		return byrep[sc, sv, f, r]
	c = byrep[sc, sv, "server_cpu", r]
	x = byrep[sc, sv, f == "us" ? "msgs_per_s" : "handshakes_per_s", r]
	return c == "" || x == "" || x + 0 == 0 ? "" : c * 1e6 / x
}
function pmed(sc, a, b, f,    r, x, y, n, i, j, t, v) {
	n = 0
	for (r = 1; r <= maxrep; r++) {
		x = per(sc, a, f, r)
		y = per(sc, b, f, r)
		if (x != "" && y != "" && y + 0 > 0)
			v[++n] = x / y
	}
	if (n == 0)
		return ""
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && v[j - 1] > v[j]; j--) {
			t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
		}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function f2(x) { return x == "" ? "-" : sprintf("%.2f", x) }
function f1(x) { return x == "" ? "-" : sprintf("%.1f", x) }
function seen(s, list) { return index(" " list " ", " " s " ") > 0 }

/^# .*bench\/run\.sh/ {	# a new run: forget the earlier ones
	delete val; delete cnt; delete errs; delete errsc; servers = ""
	delete byrep; maxrep = 0
	header = $0
	next
}
/^#/ { if ($0 ~ /^# cpu:/) cpuline = $0; next }
/scenario=/ {
	delete kv
	for (i = 1; i <= NF; i++)
		if ((p = index($i, "=")) > 0)
			kv[substr($i, 1, p - 1)] = substr($i, p + 1)
	sc = kv["scenario"]; sv = kv["server"]
	if (!seen(sv, servers))
		servers = servers " " sv
	for (f in kv) {
		if (f == "rep" || f == "scenario" || f == "server")
			continue
		k = sc SUBSEP sv SUBSEP f
		val[k, ++cnt[k]] = kv[f]
		if ("rep" in kv)
			byrep[sc, sv, f, kv["rep"]] = kv[f]
	}
	if (kv["rep"] + 0 > maxrep)
		maxrep = kv["rep"] + 0
	if ("errors" in kv) {
		errs[sv] += kv["errors"]
		errsc[sc, sv] += kv["errors"]
	}
	if ("load1" in kv)
		loads = loads " " kv["load1"]
}
function m(sc, sv, f) { return med(sc SUBSEP sv SUBSEP f) }

END {
	print substr(header, 3)
	if (cpuline != "")
		print substr(cpuline, 3)
	n = split(loads, l, " ")
	lo = hi = l[1]
	for (i = 2; i <= n; i++) {
		if (l[i] + 0 < lo + 0) lo = l[i]
		if (l[i] + 0 > hi + 0) hi = l[i]
	}
	if (n)
		printf "1-minute load average during the measurements: " \
		    "%s .. %s\n", lo, hi
	ntargets = nmet = 0

	if (cnt["loop_call_soon" SUBSEP "aloop" SUBSEP "ops_per_s"] > 0) {
		print "\n### Issue 3: loop core against raw libevent " \
		    "(bench_loop, median of repeats)\n"
		print "| row | aloop /s | libevent /s | ratio | target | |"
		print "|---|---|---|---|---|---|"
		split("call_soon call_later threadsafe threadsafe_sleep", rows,
		    " ")
		label["call_soon"] = "call_soon dispatch"
		label["call_later"] = "call_later 0 schedule+fire, " \
		    "1M timers pending"
		label["threadsafe"] = "call_soon_threadsafe wake-up"
		label["threadsafe_sleep"] = "call_soon_threadsafe from " \
		    "sleep (1 / mean latency)"
		for (i = 1; i <= 4; i++) {
			sc = "loop_" rows[i]
			a = m(sc, "aloop", "ops_per_s")
			r = m(sc, "aloop", "libevent_per_s")
			if (a == "")
				continue
			ok = judge(label[rows[i]] " (ops/s vs libevent)", num(a),
			    num(r), rat(a, r), ">= 0.90", r + 0 > 0 && a / r >= 0.9)
			printf "| %s | %s | %s | %s | >= 0.90 | %s |\n",
			    label[rows[i]], num(a), num(r), rat(a, r),
			    verdict(ok)
		}
	}

	if (cnt["task" SUBSEP "aloop" SUBSEP "pairs_per_s"] > 0) {
		print "\n### Issue 13: tasks (bench_task, median of repeats)\n"
		print "| row | /s | target | |"
		print "|---|---|---|---|"
		a = m("task", "aloop", "pairs_per_s")
		ok = judge("task suspend/resume pairs /s", num(a), "-", "-",
		    ">= 20,000,000", a + 0 >= 20e6)
		printf "| task suspend/resume pairs (sleep 0) | %s | " \
		    ">= 20,000,000 | %s |\n", num(a), verdict(ok)
		printf "| task awaits of done futures | %s | | |\n",
		    num(m("task", "aloop", "await_done_per_s"))
		printf "| swapcontext pairs | %s | | |\n",
		    num(m("task", "aloop", "swapcontext_per_s"))
		printf "| call_soon chain | %s | | |\n",
		    num(m("task", "aloop", "call_soon_per_s"))
	}

	split("a b c", tcp, " ")
	tdesc["a"] = "1 conn x 64 B"; tdesc["b"] = "100 conns x 1 KiB"
	tdesc["c"] = "10 conns x 64 KiB"
	if (m("a", "raw", "msgs_per_s") != "") {
		print "\n### Issue 4: TCP echo, round trips/s (median of " \
		    "repeats; ratio vs raw_epoll_echo of this run)\n"
		printf "| server |"
		for (i = 1; i <= 3; i++)
			printf " %s | ratio | p50/p99 us | srv cpu (us/msg) |",
			    tdesc[tcp[i]]
		print ""
		printf "|---|"
		for (i = 1; i <= 3; i++)
			printf "---|---|---|---|"
		print ""
		ns = split(servers, sl, " ")
		for (j = 1; j <= ns; j++) {
			s = sl[j]
			if (m("a", s, "msgs_per_s") == "")
				continue
			printf "| %s%s |", s, errs[s] ? " (errors=" errs[s] ")" \
			    : ""
			for (i = 1; i <= 3; i++) {
				t = tcp[i]
				v = m(t, s, "msgs_per_s")
				printf " %s | %s | %s/%s | %s |", num(v),
				    rat(v, m(t, "raw", "msgs_per_s")),
				    num(m(t, s, "p50_us")), num(m(t, s, "p99_us")),
				    us(m(t, s, "server_cpu"), v)
			}
			print ""
		}
		print ""
		print "| aloop_echo target | ratio vs raw (>= 0.90) | " \
		    "best peer | aloop / best peer (> 1.00) |"
		print "|---|---|---|---|"
		for (i = 1; i <= 3; i++) {
			t = tcp[i]
			a = m(t, "aloop", "msgs_per_s")
			if (a == "")
				continue
			r = m(t, "raw", "msgs_per_s")
			best = ""; bv = 0
			for (j = 1; j <= ns; j++) {
				s = sl[j]
				if (s == "raw" || s == "aloop" ||
				    s == "aloopd" || s == "aloopd_task" ||
				    m(t, s, "msgs_per_s") == "")
					continue
				if (m(t, s, "msgs_per_s") + 0 > bv) {
					bv = m(t, s, "msgs_per_s") + 0; best = s
				}
			}
			ok1 = judge("aloop_echo " tdesc[t] " vs raw_epoll_echo " \
			    "(msgs/s)", num(a), num(r), rat(a, r), ">= 0.90",
			    a / r >= 0.9)
			ok2 = judge("aloop_echo " tdesc[t] " vs best peer " \
			    (best == "" ? "(none)" : best), num(a), num(bv),
			    rat(a, bv), "> 1.00", best == "" || a + 0 > bv)
			printf "| %s | %s %s | %s | %s %s |\n", tdesc[t],
			    rat(a, r), verdict(ok1), best == "" ? "-" : best,
			    rat(a, bv), verdict(ok2)
		}
		# The daemon against the library's own echo, same run.
		if (m("a", "aloopd", "msgs_per_s") != "") {
			print ""
			print "| aloopd (echo plugin) target | aloopd | " \
			    "aloop_echo | raw | aloopd / aloop_echo " \
			    "(>= 0.95) | aloopd / raw | srv us/msg " \
			    "aloopd / aloop_echo | us/msg ratio (<= 1.03) |"
			print "|---|---|---|---|---|---|---|---|"
			for (i = 1; i <= 3; i++) {
				t = tcp[i]
				d = m(t, "aloopd", "msgs_per_s")
				a = m(t, "aloop", "msgs_per_s")
				r = m(t, "raw", "msgs_per_s")
				if (d == "")
					continue
				# The alternated pairs when the run has them.
				ps = t
				if (m("pair_" t, "aloopd", "msgs_per_s") != "")
					ps = "pair_" t
				pr = pmed(ps, "aloopd", "aloop", "msgs_per_s")
				ok = judge("aloopd echo " tdesc[t] " vs " \
				    "aloop_echo (msgs/s)", num(d), num(a),
				    f2(pr), ">= 0.95", pr != "" && pr >= 0.95)
				dc = m(t, "aloopd", "server_cpu")
				ac = m(t, "aloop", "server_cpu")
				du = d + 0 > 0 ? dc * 1e6 / d : ""
				au = a + 0 > 0 ? ac * 1e6 / a : ""
				# Issue 14: the daemon layer's cost per message.
				pu = pmed(ps, "aloopd", "aloop", "us")
				ok2 = judge("aloopd echo " tdesc[t] " vs " \
				    "aloop_echo (srv CPU us/msg)", f1(du),
				    f1(au), f2(pu), "<= 1.03",
				    pu != "" && pu <= 1.03)
				printf "| %s | %s | %s | %s | %s %s | %s | " \
				    "%s | %s %s |\n", tdesc[t], num(d), num(a),
				    num(r), f2(pr), verdict(ok), rat(d, r),
				    du == "" || au == "" ? "-" : \
				    sprintf("%.1f / %.1f", du, au), f2(pu),
				    verdict(ok2)
			}
			npairs = cnt["pair_a" SUBSEP "aloopd" SUBSEP \
			    "msgs_per_s"] + 0
			print "\naloopd's CPU and RSS are its master's and " \
			    "its one worker's, summed.  The two ratios " \
			    "are medians of each pair's own ratio over " \
			    "the alternated 2 s pairs of the run (" \
			    npairs " per row; without them, of each " \
			    "repeat's own).  The figures beside are the " \
			    "repeats' medians."
		}
		# Issue 13: echo as a stream_task against echo's callbacks.
		if (m("a", "aloopd_task", "msgs_per_s") != "") {
			print ""
			print "| aloopd echo_task target | aloopd_task | " \
			    "aloopd | aloopd_task / aloopd (>= 0.90) |"
			print "|---|---|---|---|"
			for (i = 1; i <= 3; i++) {
				t = tcp[i]
				k = m(t, "aloopd_task", "msgs_per_s")
				d = m(t, "aloopd", "msgs_per_s")
				if (k == "")
					continue
				ok = judge("aloopd_task " tdesc[t] " vs aloopd " \
				    "(msgs/s)", num(k), num(d), rat(k, d),
				    ">= 0.90", d != "" && d + 0 > 0 &&
				    k / d >= 0.90)
				printf "| %s | %s | %s | %s %s |\n", tdesc[t],
				    num(k), num(d), rat(k, d), verdict(ok)
			}
		}
	}

	if (m("hs", "libevent_tls", "handshakes_per_s") != "" ||
	    m("hs", "aloop_tls", "handshakes_per_s") != "") {
		refb = m("b", "raw", "msgs_per_s")
		print "\n### Issue 4: TLS 1.3 (median of repeats; " \
		    "handshakes by tls_handshake_load, echo ratio vs plain " \
		    "raw_epoll_echo 100 x 1 KiB of this run)\n"
		print "| server | handshakes/s | hs client cpu | " \
		    "hs srv cpu (us/hs) | us/hs vs libevent_tls | " \
		    "TLS echo 100 x 1 KiB msgs/s | ratio vs plain raw | " \
		    "p50/p99 us | srv cpu (us/msg) |"
		print "|---|---|---|---|---|---|---|---|---|"
		lh = m("hs", "libevent_tls", "handshakes_per_s")
		lc = m("hs", "libevent_tls", "server_cpu")
		lus = (lh + 0 > 0) ? lc * 1e6 / lh : ""
		ns = split(servers, sl, " ")
		for (j = 1; j <= ns; j++) {
			s = sl[j]
			h = m("hs", s, "handshakes_per_s")
			e = m("tls_b", s, "msgs_per_s")
			if (h == "" && e == "")
				continue
			c = m("hs", s, "server_cpu")
			hus = (h + 0 > 0) ? c * 1e6 / h : ""
			printf "| %s%s | %s | %s | %s | %s | %s | %s | %s/%s " \
			    "| %s |\n", s,
			    errs[s] ? " (errors=" errs[s] ")" : "", num(h),
			    m("hs", s, "client_cpu"), us(c, h), rat(hus, lus),
			    num(e), rat(e, refb), num(m("tls_b", s, "p50_us")),
			    num(m("tls_b", s, "p99_us")),
			    us(m("tls_b", s, "server_cpu"), e)
		}
		e = m("tls_b", "aloop_tls", "msgs_per_s")
		if (e != "" && refb != "") {
			ok = judge("aloop_tls_echo TLS echo 100 x 1 KiB vs " \
			    "plain raw (msgs/s)", num(e), num(refb),
			    rat(e, refb), ">= 0.55", e / refb >= 0.55)
			printf "\naloop_tls_echo TLS echo: %s x plain raw " \
			    "(target >= 0.55): %s\n", rat(e, refb), verdict(ok)
		}
	}

	if (cnt["mem_tcp" SUBSEP "aloop" SUBSEP "kib_per_conn"] > 0 ||
	    cnt["mem_tls" SUBSEP "aloop_tls" SUBSEP "kib_per_conn"] > 0) {
		print "\n### Issue 4: memory per idle connection (VmRSS growth " \
		    "/ connections; one 64 B round trip each, then idle)\n"
		print "| server | conns | RSS idle (KiB) | RSS with conns " \
		    "(KiB) | KiB/conn | RSS after close (KiB) | ready | " \
		    "errors | target |"
		print "|---|---|---|---|---|---|---|---|---|"
		ns = split(servers, sl, " ")
		for (k = 1; k <= 2; k++) {
			sc = k == 1 ? "mem_tcp" : "mem_tls"
			for (j = 1; j <= ns; j++) {
				s = sl[j]
				v = m(sc, s, "kib_per_conn")
				if (v == "")
					continue
				tgt = ""
				a = m(sc, "aloop", "kib_per_conn")
				if (s == "aloopd" && a != "")
					tgt = sprintf("aloop_echo %s, %+.2f " \
					    "(master + worker; not judged)", a,
					    v - a)
				# Issue 13: a task per connection.
				d = m(sc, "aloopd", "kib_per_conn")
				if (s == "aloopd_task" && d != "") {
					ok = judge("aloopd_task idle " \
					    (sc == "mem_tcp" ? "TCP" : "TLS") \
					    " KiB/conn vs aloopd", v, d,
					    sprintf("%+.2f", v - d), "<= +8",
					    v - d <= 8 &&
					    m(sc, s, "ready") == m(sc, s, "n"))
					tgt = sprintf("aloopd %+.2f (<= +8): " \
					    "%s", v - d, verdict(ok))
				}
				if (s == "aloop" || s == "aloop_tls") {
					lim = s == "aloop" ? 1.25 : 16
					want = s == "aloop" ? 10000 : 5000
					ok = v + 0 <= lim &&
					    m(sc, s, "ready") == m(sc, s, "n")
					# Fixed costs weigh more with fewer
					# connections: no verdict then.
					if (m(sc, s, "n") + 0 != want)
						tgt = sprintf("<= %s at %s " \
						    "conns: not judged", lim,
						    num(want))
					else {
						judge(s " idle KiB/conn at " \
						    num(want), v, "-", "-",
						    "<= " lim, ok)
						tgt = sprintf("<= %s: %s", lim,
						    verdict(ok))
					}
				}
				printf "| %s | %s | %s | %s | %s | %s | %s | " \
				    "%s | %s |\n", s, num(m(sc, s, "n")),
				    num(m(sc, s, "rss0")), num(m(sc, s, "rss1")),
				    v, num(m(sc, s, "rss_after")),
				    num(m(sc, s, "ready")), m(sc, s, "errors"),
				    tgt
			}
		}
	}
	# Issue 14: aloopd's proxy plugin against HAProxy and nginx, each in
	# front of the same upstreams; CPU is the proxy's (master + worker).
	if (cnt["px_a" SUBSEP "aloopd" SUBSEP "msgs_per_s"] > 0 ||
	    cnt["px_bulk" SUBSEP "aloopd" SUBSEP "mb_per_s"] > 0 ||
	    cnt["px_hs0" SUBSEP "aloopd" SUBSEP "handshakes_per_s"] > 0) {
		# The proxies in a fixed order, then any other.
		ns = split("aloopd haproxy haproxy_64k haproxy_splice nginx " \
		    "nginx_64k", sl, " ")
		nall = split(servers, all, " ")
		for (j = 1; j <= nall; j++)
			if (!seen(all[j], "aloopd haproxy haproxy_64k " \
			    "haproxy_splice nginx nginx_64k"))
				sl[++ns] = all[j]
		nref = split("haproxy_64k nginx_64k", refs, " ")
		print "\n### Issue 14: TCP echo through each proxy, round " \
		    "trips/s (median of repeats; raw_epoll_echo upstream and " \
		    "client on the other CPU; srv cpu is the proxy's)\n"
		printf "| proxy |"
		for (i = 1; i <= 3; i++)
			printf " %s | p50/p99 us | srv cpu (us/msg) |",
			    tdesc[tcp[i]]
		print ""
		printf "|---|"
		for (i = 1; i <= 3; i++)
			printf "---|---|---|"
		print ""
		for (j = 1; j <= ns; j++) {
			s = sl[j]
			if (m("px_a", s, "msgs_per_s") == "")
				continue
			e = errsc["px_a", s] + errsc["px_b", s] + \
			    errsc["px_c", s]
			printf "| %s%s |", s, e ? " (errors=" e ")" : ""
			for (i = 1; i <= 3; i++) {
				t = "px_" tcp[i]
				v = m(t, s, "msgs_per_s")
				printf " %s | %s/%s | %s |", num(v),
				    num(m(t, s, "p50_us")), num(m(t, s, "p99_us")),
				    us(m(t, s, "server_cpu"), v)
			}
			print ""
		}
		if (m("px_a", "aloopd", "msgs_per_s") != "") {
			print ""
			print "| aloopd target (medians of each repeat's " \
			    "own ratio) | against | msgs/s ratio " \
			    "(>= 1.00) | us/msg ratio (shown) |"
			print "|---|---|---|---|"
		}
		for (i = 1; i <= 3 && m("px_a", "aloopd", "msgs_per_s") != "";
		    i++) {
			t = "px_" tcp[i]
			d = m(t, "aloopd", "msgs_per_s")
			for (k = 1; k <= nref; k++) {
				r = m(t, refs[k], "msgs_per_s")
				row = "proxy echo " tdesc[tcp[i]] ": aloopd vs " \
				    refs[k] " (msgs/s)"
				if (r == "") {
					unjudged(row, num(d), ">= 1.00",
					    refs[k] " not in this run")
					printf "| %s | %s | not in this run " \
					    "| |\n", tdesc[tcp[i]], refs[k]
					continue
				}
				pr = pmed(t, "aloopd", refs[k], "msgs_per_s")
				ok = judge(row, num(d), num(r), f2(pr),
				    ">= 1.00", pr != "" && pr >= 1.0)
				printf "| %s | %s | %s %s | %s |\n",
				    tdesc[tcp[i]], refs[k], f2(pr),
				    verdict(ok), f2(pmed(t, "aloopd", refs[k],
				    "us"))
			}
		}

		gib = m("px_bulk", "aloopd", "bytes")
		if (gib == "")
			gib = 1073741824
		gib /= 1073741824
		print "\n### Issue 14: upload through each proxy to a sink " \
		    "(" f2(gib) " GiB per run, median of repeats)\n"
		print "| proxy | MB/s | proxy CPU s/GiB | srv cpu | " \
		    "client cpu | errors |"
		print "|---|---|---|---|---|---|"
		for (j = 1; j <= ns; j++) {
			s = sl[j]
			v = m("px_bulk", s, "mb_per_s")
			if (v == "")
				continue
			c = m("px_bulk", s, "server_cpu_s")
			b = m("px_bulk", s, "bytes") / 1073741824
			cg[s] = b > 0 ? c / b : ""
			printf "| %s | %s | %s | %s | %s | %s |\n", s, num(v),
			    f2(cg[s]), m("px_bulk", s, "server_cpu"),
			    m("px_bulk", s, "client_cpu"),
			    errsc["px_bulk", s] + 0
		}
		d = m("px_bulk", "aloopd", "mb_per_s")
		if (d != "") {
			row = "proxy upload: aloopd vs haproxy_splice " \
			    "(CPU s/GiB)"
			if (cg["haproxy_splice"] == "")
				unjudged(row, f2(cg["aloopd"]), "<= 1.00",
				    "haproxy_splice not in this run")
			else
				judge(row, f2(cg["aloopd"]),
				    f2(cg["haproxy_splice"]),
				    rat(cg["aloopd"], cg["haproxy_splice"]),
				    "<= 1.00", errsc["px_bulk", "aloopd"] == 0 &&
				    cg["aloopd"] <= cg["haproxy_splice"] + 0)
			for (k = 1; k <= nref; k++) {
				r = m("px_bulk", refs[k], "mb_per_s")
				row = "proxy upload: aloopd vs " refs[k] \
				    " (MB/s)"
				if (r == "")
					unjudged(row, num(d), ">= 1.00",
					    refs[k] " not in this run")
				else
					judge(row, num(d), num(r), rat(d, r),
					    ">= 1.00", r + 0 > 0 && d / r >= 1.0)
			}
		}

		print "\n### Issue 14: TLS termination, full TLS 1.3 " \
		    "handshakes through each proxy (" \
		    "tls_handshake_load, median of repeats; tickets = TLS " \
		    "1.3 session tickets the listener sends per handshake; " \
		    "the target's ratio is the median of each repeat's " \
		    "own)\n"
		print "| proxy | tickets off: sent | handshakes/s | srv cpu " \
		    "(us/hs) | tickets on: sent | handshakes/s | srv cpu " \
		    "(us/hs) |"
		print "|---|---|---|---|---|---|---|"
		for (j = 1; j <= ns; j++) {
			s = sl[j]
			if (m("px_hs0", s, "handshakes_per_s") == "" &&
			    m("px_hs1", s, "handshakes_per_s") == "")
				continue
			e = errsc["px_hs0", s] + errsc["px_hs1", s]
			printf "| %s%s |", s, e ? " (errors=" e ")" : ""
			for (k = 0; k <= 1; k++) {
				h = m("px_hs" k, s, "handshakes_per_s")
				c = m("px_hs" k, s, "server_cpu")
				hu[s, k] = h + 0 > 0 ? c * 1e6 / h : ""
				tk = m("px_tickets" k, s, "tickets")
				printf " %s | %s | %s |", tk == "" ? "-" : tk,
				    num(h), us(c, h)
			}
			print ""
		}
		for (k = 0; k <= 1; k++) {
			if (m("px_hs" k, "aloopd", "handshakes_per_s") == "")
				continue
			row = "proxy TLS handshake, tickets " \
			    (k ? "on" : "off") ": aloopd vs haproxy (srv " \
			    "CPU us/hs)"
			if (hu["haproxy", k] == "") {
				unjudged(row, f1(hu["aloopd", k]), "<= 0.90",
				    "haproxy not in this run")
				continue
			}
			# Paired by repeat, as the proxy echo rows.
			pr = pmed("px_hs" k, "aloopd", "haproxy", "ushs")
			judge(row, f1(hu["aloopd", k]), f1(hu["haproxy", k]),
			    f2(pr), "<= 0.90", pr != "" &&
			    errsc["px_hs" k, "aloopd"] == 0 && pr <= 0.90)
		}
		if (m("px_hs_sni", "aloopd", "handshakes_per_s") != "") {
			print "\n### Issue 14: TLS handshakes with 100 SNI " \
			    "certificates (tickets off; the client's name is " \
			    "one of the 99 besides the default; median of " \
			    "repeats)\n"
			print "| proxy | handshakes/s | srv cpu (us/hs) | " \
			    "us/hs vs its own without SNI |"
			print "|---|---|---|---|"
			split("aloopd haproxy", sn, " ")
			for (j = 1; j <= 2; j++) {
				s = sn[j]
				h = m("px_hs_sni", s, "handshakes_per_s")
				c = m("px_hs_sni", s, "server_cpu")
				if (h == "")
					continue
				su[s] = h + 0 > 0 ? c * 1e6 / h : ""
				e = errsc["px_hs_sni", s]
				r = ""
				if (su[s] != "" && hu[s, 0] != "")
					r = su[s] / hu[s, 0]
				printf "| %s%s | %s | %s | %s |\n", s,
				    e ? " (errors=" e ")" : "", num(h), us(c, h),
				    f2(r)
			}
			row = "proxy TLS handshake, 100 SNI certificates: " \
			    "aloopd vs haproxy (srv CPU us/hs)"
			if (su["haproxy"] == "")
				unjudged(row, f1(su["aloopd"]), "<= 0.90",
				    "haproxy not in this run")
			else {
				pr = pmed("px_hs_sni", "aloopd", "haproxy",
				    "ushs")
				judge(row, f1(su["aloopd"]), f1(su["haproxy"]),
				    f2(pr), "<= 0.90", pr != "" &&
				    errsc["px_hs_sni", "aloopd"] == 0 &&
				    pr <= 0.90)
			}
		}
	}

	# Issue 14: aloopd's start-up and reload with 100 listeners.
	if (cnt["startup_plain" SUBSEP "aloopd" SUBSEP "ms"] > 0 ||
	    cnt["startup_tls" SUBSEP "aloopd" SUBSEP "ms"] > 0) {
		print "\n### Issue 14: aloopd start-up (exec to \"started\") " \
		    "and reload (SIGHUP to \"reloaded\"), 100 listeners, ms " \
		    "(median of repeats)\n"
		print "| | plain | TLS | target (TLS) |"
		print "|---|---|---|---|"
		split("startup reload", what, " ")
		for (i = 1; i <= 2; i++) {
			p = m(what[i] "_plain", "aloopd", "ms")
			t = m(what[i] "_tls", "aloopd", "ms")
			ok = judge("aloopd " what[i] ", 100 TLS listeners (ms)",
			    f1(t), "-", "-", "< 20", t != "" && t + 0 < 20)
			printf "| %s | %s | %s | < 20 ms: %s |\n", what[i],
			    f1(p), f1(t), verdict(ok)
		}
	}
	# Issue 10: the configuration's parse and checks stay linear.
	if (cnt["config_100000" SUBSEP "aloopd" SUBSEP "ms"] > 0) {
		print "\n## aloopd configuration parse and checks (ms)\n"
		print "| listeners | wall | CPU | free | us per listener | " \
		    "target |"
		print "|---|---|---|---|---|---|"
		split("10000 100000", cn, " ")
		for (i = 1; i <= 2; i++) {
			w = m("config_" cn[i], "aloopd", "ms")
			if (w == "")
				continue
			tgt = "-"
			if (cn[i] == 100000) {
				ok = judge("aloopd configuration, 100,000 " \
				    "listeners parsed and checked (ms)", f1(w),
				    "-", "-", "< 1000", w + 0 < 1000)
				tgt = "< 1000: " verdict(ok)
			}
			printf "| %s | %.1f | %.1f | %.1f | %.2f | %s |\n",
			    num(cn[i]), w, m("config_" cn[i], "aloopd",
			    "cpu_ms"), m("config_" cn[i], "aloopd", "free_ms"),
			    w * 1000 / cn[i], tgt
		}
	}

	if (ntl) {
		print "\n### Every target of this run\n"
		print "| row | figure | reference | ratio | target | |"
		print "|---|---|---|---|---|---|"
		for (i = 1; i <= ntl; i++)
			print tl[i]
	}
	printf "\ntargets met: %d of %d%s\n", nmet, ntargets,
	    nunjudged ? sprintf(" (%d not judged: a reference did not run)",
	    nunjudged) : ""
}
