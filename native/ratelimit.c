/* ratelimit.c - per-client-subnet rate limiting of UDP answers (kresd 6's
 * rate-limiting, dnsdist's MaxQPSIPRule), shared by every fork.
 *
 * Owns: kn_rl_check (the decision for one sender: pass, TC or drop),
 * kn_rl_tc (the TC=1 answer: header and question only), and the sender
 * helpers fastpath.c shares (kn_sa_addr, kn_in_subnets). The buckets live in
 * caller-owned memory, in practice a MAP_SHARED file in the rundir
 * (kresd/modules/rate_limiting.py), so all forks update the same table.
 * Must not: allocate, lock, block, keep global state, or touch anything
 * outside the caller's table, counters and buffers.
 * The pure-Python twin is native/pure.py:RateLimit (same decisions, same
 * table bytes for the same sequence of senders and times).
 *
 * A bucket is one u64 updated with compare-and-swap (no lock): the high 32
 * bits are the time of its last update in milliseconds (CLOCK_MONOTONIC,
 * wrapping), the low 32 bits the "used" level in thousandths of a query.
 * Every passed query adds 1000; the level drains by `rate` thousandths per
 * millisecond (rate queries per second); a query that would take the level
 * past instant*1000 is limited. The table is indexed by a hash of the
 * sender's prefix (v4_bits / v6_bits); two prefixes with the same index share
 * a bucket (accepted, as kresd 6's count-min sketch accepts it: a collision
 * can only limit sooner, never let more through). A bucket idle for more than
 * 2^31 ms counts as empty.
 */
#define _GNU_SOURCE
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "kresd_native.h"
#include "wire.h"

#define CAS_TRIES 8
#define MILLI 1000u

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

int kn_sa_addr(const uint8_t *sa, const uint8_t **addr)
{
	sa_family_t fam;
	memcpy(&fam, sa, sizeof fam);
	if (fam == AF_INET) {
		*addr = sa + offsetof(struct sockaddr_in, sin_addr);
		return 4;
	}
	if (fam == AF_INET6) {
		*addr = sa + offsetof(struct sockaddr_in6, sin6_addr);
		return 6;
	}
	return 0;
}

int kn_in_subnets(int family, const uint8_t *addr, unsigned n, const uint8_t *net_family,
		  const uint8_t *net_bits, const uint8_t (*net_addr)[16])
{
	unsigned max = family == 4 ? 32 : 128;
	for (unsigned i = 0; i < n && i < KN_NETS_MAX; i++) { /* = KN_RL_EXEMPT_MAX */
		if (net_family[i] != family)
			continue;
		unsigned bits = net_bits[i] > max ? max : net_bits[i];
		unsigned whole = bits / 8, rest = bits % 8;
		if (memcmp(addr, net_addr[i], whole) != 0)
			continue;
		if (rest) {
			uint8_t mask = (uint8_t)(0xFF << (8 - rest));
			if ((addr[whole] & mask) != (net_addr[i][whole] & mask))
				continue;
		}
		return 1;
	}
	return 0;
}

/* FNV-1a of the seed (4 bytes, little endian, when not 0), the family byte
 * and the masked prefix bytes. */
static uint32_t prefix_hash(uint32_t seed, int family, const uint8_t *addr, unsigned bits)
{
	uint32_t h = 2166136261u;
	if (seed) {
		const uint8_t s[4] = {(uint8_t)seed, (uint8_t)(seed >> 8), (uint8_t)(seed >> 16),
				      (uint8_t)(seed >> 24)};
		h = fnv(h, s, 4);
	}
	uint8_t buf[17];
	unsigned max = family == 4 ? 32 : 128;
	if (bits > max)
		bits = max;
	unsigned n = (bits + 7) / 8;
	buf[0] = (uint8_t)family;
	memcpy(buf + 1, addr, n);
	if (bits % 8)
		buf[n] &= (uint8_t)(0xFF << (8 - bits % 8));
	return fnv(h, buf, n + 1);
}

/* The new bucket word after a query at now_ms; *limited is set when the
 * query does not fit. */
static uint64_t step(uint64_t old, uint32_t now_ms, uint32_t rate, uint32_t instant, int *limited)
{
	uint32_t t = (uint32_t)(old >> 32), used = (uint32_t)old;
	uint32_t elapsed = now_ms - t;
	if (elapsed > 0x80000000u)
		used = 0; /* from the future (clock wrap, another boot): start afresh */
	else {
		uint64_t drain = (uint64_t)elapsed * rate;
		used = drain >= used ? 0 : used - (uint32_t)drain;
	}
	uint64_t cap = (uint64_t)instant * MILLI;
	if ((uint64_t)used + MILLI > cap) {
		*limited = 1;
	} else {
		*limited = 0;
		used += MILLI;
	}
	return ((uint64_t)now_ms << 32) | used;
}

int kn_rl_check(struct kn_rl *rl, const uint8_t *sa, uint32_t now_ms)
{
	const uint8_t *addr;
	int family = kn_sa_addr(sa, &addr);
	if (!family || rl->nbuckets == 0 || (rl->nbuckets & (rl->nbuckets - 1)))
		return KN_RL_PASS;
	if (rl->nexempt && kn_in_subnets(family, addr, rl->nexempt, rl->ex_family, rl->ex_bits,
					 (const uint8_t (*)[16])rl->ex_addr))
		return KN_RL_PASS;
	uint32_t h = prefix_hash(rl->seed, family, addr, family == 4 ? rl->v4_bits : rl->v6_bits);
	uint64_t *b = &rl->buckets[h & (rl->nbuckets - 1)];
	uint32_t instant = rl->instant > KN_RL_INSTANT_MAX ? KN_RL_INSTANT_MAX : rl->instant;
	int limited = 0;
	uint64_t old = __atomic_load_n(b, __ATOMIC_RELAXED);
	for (int i = 0; i < CAS_TRIES; i++) {
		uint64_t nv = step(old, now_ms, rl->rate, instant, &limited);
		if (nv == old || __atomic_compare_exchange_n(b, &old, nv, 0, __ATOMIC_RELAXED,
							     __ATOMIC_RELAXED))
			break;
		limited = 0; /* contended past CAS_TRIES: let it pass (approximate) */
	}
	if (!limited)
		return KN_RL_PASS;
	rl->nlimited++;
	if (rl->dry_run)
		return KN_RL_PASS;
	uint64_t n = __atomic_add_fetch(&rl->shared[0], 1, __ATOMIC_RELAXED);
	if (rl->slip && n % rl->slip == 0)
		return KN_RL_TC;
	return KN_RL_DROP;
}

int kn_rl_tc(const uint8_t *q, size_t qlen, uint8_t *out, size_t outlen)
{
	struct kn_query pq;
	if (kn_parse_query(q, qlen, &pq) != KN_OK || (pq.flags & 0x8000))
		return KN_EMALF;
	size_t qend = pq.question_end;
	if (qend > qlen || qend < 12)
		return KN_EMALF;
	if (outlen < qend)
		return KN_ENOSPC;
	/* QR, TC; the opcode, RD and CD of the query; rcode NOERROR */
	uint16_t flags = (uint16_t)(0x8000 | 0x0200 | (pq.flags & (0x7800 | 0x0100 | 0x0010)));
	wr16(out, pq.id);
	wr16(out + 2, flags);
	wr16(out + 4, 1);
	memset(out + 6, 0, 6);
	memcpy(out + 12, q + 12, qend - 12);
	return (int)qend;
}
