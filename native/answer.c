/* answer.c - build the wire answer to a query straight from a cached RRset.
 *
 * Owns: kn_answer(), the fast path for a positive cache hit: eligibility of
 * the query (as parsed by kn_parse_query), usability of the cache value
 * (cache/entry.py layout, header !IIBBH + positive payload), and the answer
 * bytes (header, the query's question copied verbatim, count records owned
 * by a 0xC00C pointer, the OPT RR if the query had one).
 * Must not: allocate, keep global state, touch Python objects, or read a byte
 * of q, val or pq's buffers outside their bounds, or write outside
 * out[0..outlen). pq is not trusted: its offsets are checked against qlen.
 * The pure-Python twin is native/pure.py:answer (same result bytes, same
 * None cases); tests/property/test_native_answer.py checks both against
 * the slow path (workers.request.make_answer + workers.server.render_answer).
 */
#include <string.h>

#include "kresd_native.h"
#include "wire.h"

#define HDR_LEN 12
#define F_QR 0x8000
#define F_RD 0x0100
#define F_RA 0x0080
#define F_CD 0x0010
#define F_AD 0x0020
#define VAL_HDR 12
#define FLAG_RRSIGS 0x01
#define FLAG_NEGATIVE 0x02
#define RANK_BITS 0x3F
#define TYPE_OPT 41
#define CLASS_IN 1

int kn_rank_is_answer(unsigned int rank)
{
	if (rank & ~(unsigned)RANK_BITS)
		return 0; /* bits 0x40/0x80 (or more) are no kr_rank bits */
	if (!(rank & KN_RANK_AUTH))
		return 0;
	return (rank & ~(unsigned)(KN_RANK_AUTH | KN_RANK_SECURE)) != KN_RANK_BOGUS;
}

/** Walk `count` (u16 rdlen, rdata) items of a cache value from *pos (bounds
 *  checked against vlen); adds the rdata bytes to *total when not NULL.
 *  Returns 0, or -1 when an item runs past the value. */
static int walk_rdatas(const uint8_t *val, size_t vlen, size_t *pos, unsigned count, size_t *total)
{
	size_t p = *pos;
	for (unsigned i = 0; i < count; i++) {
		if (vlen - p < 2)
			return -1;
		uint16_t rdlen = rd16(val + p);
		p += 2;
		if (rdlen > vlen - p)
			return -1;
		p += rdlen;
		if (total)
			*total += rdlen;
	}
	*pos = p;
	return 0;
}

/* Query eligible for the fast path? */
static int query_ok(const uint8_t *q, size_t qlen, const struct kn_query *pq)
{
	if (qlen < HDR_LEN || qlen > KN_MAX_MSG_LEN)
		return 0;
	uint16_t flags = rd16(q + 2);
	if ((flags & F_QR) || !(flags & F_RD) || ((flags >> 11) & 0xF) != 0)
		return 0;
	/* AD or CD asked: DNSSEC semantics (AD bit, unvalidated data) are the
	 * full path's; so is DO below (RRSIGs, AD) */
	if (flags & (F_AD | F_CD))
		return 0;
	if (rd16(q + 4) != 1 || rd16(q + 6) != 0 || rd16(q + 8) != 0)
		return 0;
	if (pq->has_opt > 1 || rd16(q + 10) > (pq->has_opt ? 1 : 0))
		return 0;
	if (pq->has_opt && (pq->edns_version != 0 || pq->opt_flags != 0))
		return 0;
	if (pq->has_opt && (pq->edns_flags & 0x8000))
		return 0; /* DO */
	if (pq->qclass != CLASS_IN)
		return 0;
	uint16_t t = pq->qtype;
	if (t == 0 || t == TYPE_OPT || (t >= 128 && t <= 255))
		return 0;
	/* the question must be an uncompressed name + type + class: it is copied
	 * verbatim and the records point at offset 12 */
	size_t nl = pq->qname_len;
	if (nl < 1 || nl > KN_QNAME_MAX || pq->question_end != HDR_LEN + nl + 4)
		return 0;
	if (pq->question_end > qlen)
		return 0;
	/* and it must be what pq says it is */
	if (rd16(q + HDR_LEN + nl) != t || rd16(q + HDR_LEN + nl + 2) != CLASS_IN)
		return 0;
	if (memcmp(q + HDR_LEN, pq->qname, nl) != 0)
		return 0;
	return 1;
}

int kn_answer(const uint8_t *q, size_t qlen, const struct kn_query *pq,
	      const uint8_t *val, size_t vlen, uint32_t now, uint16_t bufsize,
	      size_t maxlen, uint8_t *out, size_t outlen)
{
	if (q == NULL || pq == NULL || val == NULL || out == NULL)
		return KN_ENOTELIG;
	if (!query_ok(q, qlen, pq))
		return KN_ENOTELIG;

	/* value header */
	if (vlen < VAL_HDR + 2)
		return KN_EVALUE;
	uint32_t inception = rd32(val);
	uint32_t ttl = rd32(val + 4);
	uint8_t rank = val[8];
	uint8_t vflags = val[9];
	uint16_t vtype = rd16(val + 10);
	if (vflags & ~FLAG_RRSIGS)
		return KN_EVALUE; /* negative, or unknown flags */
	if (vtype != pq->qtype)
		return KN_EVALUE;
	if (!kn_rank_is_answer(rank))
		return KN_EVALUE;
	int64_t remaining = (int64_t)ttl;
	if (now > inception)
		remaining -= (int64_t)now - (int64_t)inception;
	if (remaining <= 0)
		return KN_EVALUE;

	/* payload: count x (rdlen, rdata), then optional RRSIGs */
	size_t pos = VAL_HDR;
	uint16_t count = rd16(val + pos);
	pos += 2;
	if (count == 0)
		return KN_EVALUE;
	size_t nq = pq->question_end; /* header + question */
	size_t need = nq + (pq->has_opt ? 11 : 0);
	size_t rr_start = pos;
	size_t rdata_bytes = 0;
	if (walk_rdatas(val, vlen, &pos, count, &rdata_bytes) != 0)
		return KN_EVALUE;
	need += 12 * (size_t)count + rdata_bytes;
	if (vflags & FLAG_RRSIGS) {
		if (vlen - pos < 2)
			return KN_EVALUE;
		uint16_t scount = rd16(val + pos);
		pos += 2;
		if (walk_rdatas(val, vlen, &pos, scount, NULL) != 0)
			return KN_EVALUE;
	}
	if (pos != vlen)
		return KN_EVALUE;
	size_t limit = maxlen < outlen ? maxlen : outlen;
	if (need > limit || need > KN_MAX_MSG_LEN)
		return KN_ENOSPC;

	/* header */
	uint16_t qflags = rd16(q + 2);
	memcpy(out, q, 2); /* id */
	wr16(out + 2, (uint16_t)(F_QR | F_RA | (qflags & (F_RD | F_CD))));
	wr16(out + 4, 1);
	wr16(out + 6, count);
	wr16(out + 8, 0);
	wr16(out + 10, pq->has_opt ? 1 : 0);
	/* question, verbatim */
	memcpy(out + HDR_LEN, q + HDR_LEN, nq - HDR_LEN);
	size_t o = nq;
	/* answer records */
	pos = rr_start;
	for (unsigned i = 0; i < count; i++) {
		uint16_t rdlen = rd16(val + pos);
		pos += 2;
		out[o] = 0xC0;
		out[o + 1] = HDR_LEN;
		wr16(out + o + 2, pq->qtype);
		wr16(out + o + 4, CLASS_IN);
		wr32(out + o + 6, (uint32_t)remaining);
		wr16(out + o + 10, rdlen);
		o += 12;
		memcpy(out + o, val + pos, rdlen);
		o += rdlen;
		pos += rdlen;
	}
	/* OPT */
	if (pq->has_opt) {
		out[o] = 0;
		wr16(out + o + 1, TYPE_OPT);
		wr16(out + o + 3, bufsize);
		out[o + 5] = 0; /* extended rcode */
		out[o + 6] = 0; /* version */
		wr16(out + o + 7, (uint16_t)((pq->edns_flags & 0x8000) ? 0x8000 : 0));
		wr16(out + o + 9, 0);
		o += 11;
	}
	return (int)o;
}
