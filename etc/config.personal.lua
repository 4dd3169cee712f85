-- SPDX-License-Identifier: CC0-1.0
-- kresd-py example: a personal caching resolver, after Knot Resolver's
-- etc/config/config.personal.lua.
--
--   .venv/bin/kresd -n -c "$PWD/etc/config.personal.lua" rundir
--   (-c is relative to the rundir, as in kresd, so give an absolute path)
--
-- The file is read by kresd-py's Lua engine (kresd/engine.py), with Knot
-- Resolver 5.x's Lua API; a config error stops kresd with
-- "<file>:<line>: message" (exit code 3). Listener kinds other than 'dns'
-- (tls, doh2) and modules kresd-py lacks ('predict') are errors.

-- Network interface configuration: plain DNS over UDP and TCP.
-- (kresd's personal config also listens with kind = 'tls' on 853 and
-- kind = 'doh2' on 443: not implemented yet.)
net.listen('127.0.0.1', 53, { kind = 'dns' })
net.listen('::1', 53, { kind = 'dns' })

-- Modules (Python built-ins in kresd-py; 'predict' is not available yet).
modules = {
	'hints > iterate',  -- Allow loading custom root hints
	'stats',            -- Track internal statistics
}

-- Cache size (an LMDB file, data.mdb, in the rundir)
cache.size = 100 * MB
