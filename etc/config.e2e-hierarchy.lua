-- SPDX-License-Identifier: CC0-1.0
-- kresd-py example: resolve against the test DNS hierarchy of tests/e2e
-- (knotd on 127.0.10.2-8, port 53) instead of the Internet. For debugging by hand:
--
--   sudo .venv/bin/python -m tests.e2e.hierarchy         # terminal 1, keeps running
--   sudo .venv/bin/kresd -n -c "$PWD/etc/config.e2e-hierarchy.lua" /tmp/kresd-e2e
--   kdig @127.0.10.1 www.glue.test A                     # terminal 3
--
-- The file is valid for real kresd 5.6 as well.

net.listen('127.0.10.1', 53, { kind = 'dns' })
modules.load('hints > iterate')
-- test. is special-use (RFC 6761): kresd's policy answers it NXDOMAIN unless allowed.
policy.add(policy.suffix(policy.PASS, {todname('test.')}))
-- The hierarchy is unsigned: no DNSSEC validation.
trust_anchors.remove('.')
-- The authoritative servers live on loopback, which a resolver refuses by default.
option('ALLOW_LOCAL', true)
-- Root hint: the hierarchy's root server instead of the real root servers.
hints.root({['a.root-servers.net.'] = '127.0.10.2'})
