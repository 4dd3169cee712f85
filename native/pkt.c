/* pkt.c - bounds-checked parse of a DNS query: header, first question, OPT.
 *
 * Owns: kn_parse_query() and the wire-name reader it uses.
 * Must not: allocate, keep global state, touch Python objects, or read a
 * byte of wire outside [0, len). Every read below is preceded by an explicit
 * length check against `end` (which is always <= len).
 * The pure-Python twin is native/pure.py:parse_query (same results, same
 * codes); tests/property/test_native_parse.py checks that they agree.
 */
#include <string.h>

#include "kresd_native.h"
#include "wire.h"

#define KN_MAX_HOPS 16 /* dnspython MAX_COMPRESSION_POINTER_CHAIN */
#define KN_TYPE_OPT 41

/* Read a possibly compressed name starting at *pos.
 * On success: *pos is just past the name as it sits at *pos (past the first
 * pointer if there is one), *wlen is the uncompressed wire length (root
 * label included) and, if out is not NULL, out[0..*wlen) holds the name.
 * out must have room for KN_QNAME_MAX bytes. */
static int read_name(const uint8_t *w, size_t len, size_t *pos,
		     uint8_t *out, size_t *wlen)
{
	size_t cur = *pos;
	size_t end = len;        /* reads restricted to [.., end) */
	size_t seg_start = cur;  /* start of the segment being read */
	size_t limit = cur;      /* next pointer must be < limit */
	size_t resume = 0;       /* position after the first pointer */
	unsigned hops = 0;
	size_t n = 0;            /* uncompressed bytes so far, root excluded */

	for (;;) {
		if (cur >= end)
			return KN_EMALF;
		uint8_t c = w[cur++];
		if (c == 0)
			break;
		if (c < 64) {
			if (c > end - cur)
				return KN_EMALF;
			/* 1 + c more bytes, and the root byte must still fit */
			if (n + 1 + c + 1 > KN_QNAME_MAX)
				return KN_EMALF;
			if (out) {
				out[n] = c;
				memcpy(out + n + 1, w + cur, c);
			}
			n += 1 + (size_t)c;
			cur += c;
		} else if (c >= 0xC0) {
			if (cur >= end)
				return KN_EMALF;
			size_t target = ((size_t)(c & 0x3F) << 8) | w[cur++];
			if (target >= limit)
				return KN_EMALF;
			if (++hops > KN_MAX_HOPS)
				return KN_EMALF;
			if (hops == 1)
				resume = cur;
			limit = target;
			/* the target's labels must end before this segment */
			end = seg_start;
			seg_start = target;
			cur = target;
		} else {
			return KN_EMALF; /* 0x40 / 0x80 label types */
		}
	}
	if (out)
		out[n] = 0;
	*wlen = n + 1;
	*pos = hops ? resume : cur;
	return KN_OK;
}

/* Check that OPT RDATA is a sequence of whole option TLVs; note the first
 * COOKIE option. */
static int scan_options(const uint8_t *w, size_t off, size_t rdlen,
			struct kn_query *out)
{
	size_t p = off, stop = off + rdlen;
	while (p < stop) {
		if (stop - p < 4)
			return KN_EMALF;
		uint16_t code = rd16(w + p);
		uint16_t olen = rd16(w + p + 2);
		p += 4;
		if (olen > stop - p)
			return KN_EMALF;
		if (code == KN_EDNS_COOKIE && out->cookie_off == 0) {
			out->cookie_off = (uint16_t)p;
			out->cookie_len = olen;
		}
		p += olen;
	}
	return KN_OK;
}

/* Note an OPT RR found in section sec (1 answer, 2 authority, 3 additional). */
static void take_opt(const uint8_t *w, struct kn_query *out, int sec,
		     size_t owner_len, uint16_t rclass, uint32_t ttl,
		     size_t rdoff, uint16_t rdlen)
{
	if (sec != 3) {
		out->opt_flags |= KN_OPT_WRONG_SECTION;
		return;
	}
	if (out->has_opt) {
		out->opt_flags |= KN_OPT_DUPLICATE;
		return;
	}
	out->has_opt = 1;
	if (owner_len != 1)
		out->opt_flags |= KN_OPT_BAD_OWNER;
	out->udp_size = rclass;
	out->ext_rcode = (uint8_t)(ttl >> 24);
	out->edns_version = (uint8_t)(ttl >> 16);
	out->edns_flags = (uint16_t)ttl;
	out->do_bit = (ttl & 0x8000) ? 1 : 0;
	out->opt_rdata_off = (uint16_t)rdoff;
	out->opt_rdata_len = rdlen;
	if (scan_options(w, rdoff, rdlen, out) != KN_OK)
		out->opt_flags |= KN_OPT_MALFORMED;
}

/* Walk count records of section sec starting at *pos. */
static int walk_records(const uint8_t *w, size_t len, size_t *pos,
			unsigned count, int sec, struct kn_query *out)
{
	for (unsigned i = 0; i < count; i++) {
		size_t owner_len;
		int ret = read_name(w, len, pos, NULL, &owner_len);
		if (ret != KN_OK)
			return ret;
		size_t p = *pos;
		if (len - p < 10)
			return KN_EMALF;
		uint16_t rtype = rd16(w + p);
		uint16_t rclass = rd16(w + p + 2);
		uint32_t ttl = ((uint32_t)rd16(w + p + 4) << 16) | rd16(w + p + 6);
		uint16_t rdlen = rd16(w + p + 8);
		p += 10;
		if (rdlen > len - p)
			return KN_EMALF;
		if (rtype == KN_TYPE_OPT)
			take_opt(w, out, sec, owner_len, rclass, ttl, p, rdlen);
		*pos = p + rdlen;
	}
	return KN_OK;
}

int kn_parse_query(const uint8_t *wire, size_t len, struct kn_query *out)
{
	if (wire == NULL || out == NULL || len < 12)
		return KN_ESHORT;
	memset(out, 0, offsetof(struct kn_query, qname));
	out->id = rd16(wire);
	out->flags = rd16(wire + 2);
	out->qdcount = rd16(wire + 4);
	out->ancount = rd16(wire + 6);
	out->nscount = rd16(wire + 8);
	out->arcount = rd16(wire + 10);
	out->opcode = (uint8_t)((out->flags >> 11) & 0xF);
	out->rcode = (uint8_t)(out->flags & 0xF);
	if (out->qdcount == 0)
		return KN_ENOQ;
	if (out->qdcount > 1)
		return KN_EQDCOUNT;
	if (len > KN_MAX_MSG_LEN)
		return KN_EMALF;

	/* question */
	size_t pos = 12, qlen;
	int ret = read_name(wire, len, &pos, out->qname, &qlen);
	if (ret != KN_OK)
		return ret;
	if (len - pos < 4)
		return KN_EMALF;
	out->qtype = rd16(wire + pos);
	out->qclass = rd16(wire + pos + 2);
	pos += 4;
	out->question_end = (uint16_t)pos;
	out->qname_len = (uint16_t)qlen;
	for (size_t i = 0; i < qlen; i++) {
		uint8_t c = out->qname[i];
		out->qname_lower[i] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
	}
	/* length bytes are <= 63, never in 'A'..'Z', so lowering them is a no-op */

	/* records, to find the OPT */
	ret = walk_records(wire, len, &pos, out->ancount, 1, out);
	if (ret == KN_OK)
		ret = walk_records(wire, len, &pos, out->nscount, 2, out);
	if (ret == KN_OK)
		ret = walk_records(wire, len, &pos, out->arcount, 3, out);
	if (ret != KN_OK)
		return ret;
	if (pos != len)
		return KN_ETRAIL;
	if (out->opt_flags)
		return KN_EBADOPT;
	return KN_OK;
}
