-- SPDX-License-Identifier: CC0-1.0
-- kresd-py example: a personal caching resolver, after Knot Resolver's
-- etc/config/config.personal.lua.
--
--   .venv/bin/kresd -n -c "$PWD/etc/config.personal.lua" rundir
--   (-c is relative to the rundir, as in kresd, so give an absolute path)
--
-- This file uses ONLY the statements kresd-py reads before its Lua engine
-- exists (kresd/miniconf.py): net.listen with kind 'dns', net.ipv4/ipv6,
-- net.bufsize, modules.load / modules = {...} for built-ins, cache.size,
-- cache.min_ttl/max_ttl, option(...), hints.root(...), mode(...),
-- log_level(...), verbose(...), trust_anchors.remove('.').
-- Anything else stops kresd with "<file>:<line>: not supported until the Lua
-- engine lands" (exit code 3). A full Lua config (tls/doh2 listeners,
-- 'predict', policy rules, event callbacks ...) comes with the Lua engine issue.

-- Network interface configuration: plain DNS over UDP and TCP.
-- (kresd's personal config also listens with kind = 'tls' on 853 and
-- kind = 'doh2' on 443: not implemented yet.)
net.listen('127.0.0.1', 53, { kind = 'dns' })
net.listen('::1', 53, { kind = 'dns' })

-- Modules: both are built into kresd-py and always active, so this line only
-- keeps the file compatible with real kresd. ('predict' is not available yet.)
modules = {
	'hints > iterate',  -- Allow loading custom root hints
	'stats',            -- Track internal statistics
}

-- Cache size (an LMDB file, data.mdb, in the rundir)
cache.size = 100 * MB
