/* reply.c - the plainest upstream reply of the cache-miss fast path.
 *
 * Owns: kn_reply_rrset (see kresd_native.h for the exact rules): one pass
 * over a reply, every length checked against rlen, the offsets of the
 * records it takes written to the caller's struct kn_reply.
 * Must not: allocate, keep state, decompress names (a name that is not the
 * question's pointer or the literal question name is refused), or read
 * outside r[0..rlen) and qname[0..qlen).
 * The pure-Python twin is native/pure.py:reply_rrset.
 */
#include <string.h>

#include "kresd_native.h"
#include "wire.h"

#define TYPE_A 1
#define TYPE_AAAA 28
#define TYPE_OPT 41
#define TYPE_RRSIG 46
#define CLASS_IN 1

static inline uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* r[pos..pos+n) equals name[0..n) ignoring ASCII case (caller checked bounds). */
static int same_name(const uint8_t *a, const uint8_t *name, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(name[i]))
			return 0;
	return 1;
}

/* The end of the uncompressed name at b[pos..n), or 0 when there is none. */
static size_t plain_name_end(const uint8_t *b, size_t pos, size_t n)
{
	size_t start = pos;
	while (pos < n) {
		uint8_t c = b[pos];
		if (c == 0)
			return pos + 1;
		if ((c & 0xC0) || pos + 1 + c > n || pos - start + c + 2 > 255)
			return 0;
		pos += 1 + (size_t)c;
	}
	return 0;
}

int kn_reply_rrset(const uint8_t *r, size_t rlen, uint16_t qid, const uint8_t *qname, size_t qlen,
		   uint16_t qtype, uint32_t min_ttl, uint32_t max_ttl, int sigs, struct kn_reply *out)
{
	size_t want = qtype == TYPE_A ? 4 : qtype == TYPE_AAAA ? 16 : 0;
	if (!want || rlen < 12 || qlen == 0)
		return KN_EMALF;
	uint16_t flags = rd16(r + 2), qd = rd16(r + 4), an = rd16(r + 6), ns = rd16(r + 8), ar = rd16(r + 10);
	if (rd16(r) != qid || (flags & 0xFA0F) != 0x8000 || qd != 1 || an == 0 || an > KN_REPLY_MAX
	    || ns || ar > 1)
		return KN_EMALF;
	size_t qend = 12 + qlen;
	if (rlen < qend + 4 || memcmp(r + 12, qname, qlen) != 0 || rd16(r + qend) != qtype
	    || rd16(r + qend + 2) != CLASS_IN)
		return KN_EMALF;
	size_t pos = qend + 4;
	uint32_t ttl = 0;
	unsigned nrd = 0, nsig = 0;
	for (unsigned i = 0; i < an; i++) {
		if (pos + 2 <= rlen && r[pos] == 0xC0 && r[pos + 1] == 12)
			pos += 2;
		else if (pos + qlen <= rlen && same_name(r + pos, qname, qlen))
			pos += qlen;
		else
			return KN_EMALF;
		if (pos + 10 > rlen)
			return KN_EMALF;
		uint16_t rtype = rd16(r + pos), rclass = rd16(r + pos + 2), rdlen = rd16(r + pos + 8);
		uint32_t rttl = rd32(r + pos + 4);
		pos += 10;
		if (rclass != CLASS_IN || pos + rdlen > rlen)
			return KN_EMALF;
		if (rttl >> 31)
			rttl = 0; /* RFC 2181 8 */
		const uint8_t *rd = r + pos;
		if (rtype == qtype && rdlen == want) {
			for (unsigned j = 0; j < nrd; j++)
				if (memcmp(r + out->rd_off[j], rd, want) == 0)
					return KN_EMALF;
			out->rd_off[nrd++] = (uint16_t)pos;
			if (nrd == 1 || rttl < ttl)
				ttl = rttl;
		} else if (rtype == TYPE_RRSIG && sigs && rdlen > 19 && rd16(rd) == qtype
			   && plain_name_end(rd, 18, rdlen) != 0 && plain_name_end(rd, 18, rdlen) < rdlen) {
			for (unsigned j = 0; j < nsig; j++)
				if (out->sig_len[j] == rdlen && memcmp(r + out->sig_off[j], rd, rdlen) == 0)
					return KN_EMALF;
			out->sig_off[nsig] = (uint16_t)pos;
			out->sig_len[nsig] = rdlen;
			out->sig_ttl[nsig++] = rttl;
		} else {
			return KN_EMALF;
		}
		pos += rdlen;
	}
	if (ar) {
		if (pos + 11 > rlen || r[pos] != 0)
			return KN_EMALF;
		uint16_t rtype = rd16(r + pos + 1), rdlen = rd16(r + pos + 9);
		uint32_t rttl = rd32(r + pos + 5);
		pos += 11 + (size_t)rdlen;
		if (rtype != TYPE_OPT || (rttl >> 24) || pos > rlen)
			return KN_EMALF;
	}
	if (pos != rlen || nrd == 0 || ttl < min_ttl || ttl > max_ttl)
		return KN_EMALF;
	out->ttl = ttl;
	out->nrd = (uint16_t)nrd;
	out->nsig = (uint16_t)nsig;
	return KN_OK;
}
