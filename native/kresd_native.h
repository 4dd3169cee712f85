/* kresd_native.h - the whole C boundary of kresd-py (native/).
 *
 * Owns: the declarations of every C function Python may call, the layout of
 * the caller-owned output structs, and the meaning of every return code.
 * Must not: declare anything that takes or returns Python objects, callbacks
 * or pointers to mutable global state. Only bytes in, caller-owned buffers
 * out, int return codes.
 *
 * native/build.py feeds the text between the CDEF-BEGIN and CDEF-END markers
 * to cffi's cdef(), so that section must stay plain declarations that cffi's
 * parser understands (no #include, no #if, no function-like macros, integer
 * #defines only).
 */
#ifndef KRESD_NATIVE_H
#define KRESD_NATIVE_H

#include <stddef.h>
#include <stdint.h>

/* CDEF-BEGIN */

/* Return codes. 0 (or a length >= 0 for kn_cache_key) is success. */
enum kn_rc {
	KN_OK = 0,
	/* Fewer than 12 bytes: the header is unreadable, nothing in the output
	 * struct is valid. The caller drops the packet. */
	KN_ESHORT = -1,
	/* The header is readable (header fields of the output are valid), but the
	 * rest is malformed: a name is broken (label type 0x40/0x80, bad or
	 * forward/self compression pointer, more than 16 pointer hops, a pointer
	 * target overlapping the name that points to it, wire length > 255), a
	 * record or rdata runs past the end, or the message is longer than
	 * 65535 bytes. The caller answers FORMERR. For kn_cache_key: the name
	 * is malformed. */
	KN_EMALF = -2,
	/* QDCOUNT == 0: only the header was parsed (header-only query, e.g. a
	 * DNS cookie probe). Header fields are valid, nothing else is. */
	KN_ENOQ = -3,
	/* QDCOUNT > 1: only the header was parsed. Caller answers FORMERR. */
	KN_EQDCOUNT = -4,
	/* The records parsed fine but bytes follow the last one. Every field of
	 * the output is valid. The caller decides (kresd treats it as an error). */
	KN_ETRAIL = -5,
	/* Everything parsed, but the OPT RR is bad: see opt_flags for which
	 * problem (RFC 6891 6.1.1: FORMERR). Every field of the output is valid
	 * and describes the first OPT RR in the additional section, if any. */
	KN_EBADOPT = -6,
	/* kn_cache_key: the key would be longer than KN_MAX_KEY_LEN. */
	KN_EKEYLEN = -7,
	/* kn_cache_key: the key would be longer than outlen (but fits the max).
	 * kn_answer: the answer would be longer than min(maxlen, outlen). */
	KN_ENOSPC = -8,
	/* kn_answer: the query is not eligible for the fast path. */
	KN_ENOTELIG = -9,
	/* kn_answer: the cache value is not usable (negative, wrong type, not an
	 * answer rank, expired, empty, malformed). */
	KN_EVALUE = -10
};

/* Bits of kn_query.opt_flags. */
enum kn_opt_flag {
	KN_OPT_WRONG_SECTION = 1, /* an OPT RR in the answer or authority section */
	KN_OPT_DUPLICATE = 2,     /* more than one OPT RR in the additional section */
	KN_OPT_BAD_OWNER = 4,     /* the (first) OPT RR's owner is not the root */
	KN_OPT_MALFORMED = 8      /* its options are not a sequence of whole TLVs */
};

#define KN_QNAME_MAX 255      /* max wire length of a name, root label included */
#define KN_MAX_KEY_LEN 511    /* CACHE_KEY_DEF MAX_KEY_LEN (LMDB default max key) */
#define KN_MAX_MSG_LEN 65535  /* longer messages are KN_EMALF */
#define KN_EDNS_COOKIE 10     /* EDNS option code of DNS COOKIE (RFC 7873) */

/* Cache ranks (kresd lib/cache/api.h kr_rank; cache/api.py Rank has the
 * same values). The low values are exclusive states, AUTH and SECURE are
 * flags; bits 0x40 and 0x80 are no rank bits. */
enum kn_rank {
	KN_RANK_INITIAL = 0,
	KN_RANK_OMIT = 1,
	KN_RANK_TRY = 2,
	KN_RANK_INDET = 4,
	KN_RANK_BOGUS = 5,
	KN_RANK_MISMATCH = 6,
	KN_RANK_MISSING = 7,
	KN_RANK_INSECURE = 8,
	KN_RANK_AUTH = 16,
	KN_RANK_SECURE = 32
};

/* Output of kn_parse_query, owned (and may be reused) by the caller.
 * Fields that a return code says are not valid are left with unspecified
 * content. Scalars come first; Python reads them with one struct.unpack. */
struct kn_query {
	/* header (valid unless KN_ESHORT) */
	uint16_t id;
	uint16_t flags;        /* the raw second header word (QR, opcode, AA, TC, RD,
	                        * RA, Z, AD, CD, rcode) */
	uint16_t qdcount;
	uint16_t ancount;
	uint16_t nscount;
	uint16_t arcount;
	uint8_t opcode;        /* (flags >> 11) & 0xF */
	uint8_t rcode;         /* flags & 0xF (header part only) */
	/* question (valid for KN_OK, KN_ETRAIL, KN_EBADOPT) */
	uint16_t qtype;
	uint16_t qclass;
	uint16_t qname_len;    /* bytes in qname/qname_lower, root label included */
	uint16_t question_end; /* offset just past the question's QCLASS */
	/* EDNS: the first OPT RR of the additional section (same validity as the
	 * question; all zero when has_opt == 0) */
	uint16_t udp_size;     /* OPT CLASS */
	uint8_t ext_rcode;     /* upper 8 bits of the 12-bit rcode (TTL bits 31-24) */
	uint8_t edns_version;  /* TTL bits 23-16 */
	uint16_t edns_flags;   /* TTL bits 15-0 (DO is 0x8000) */
	uint8_t has_opt;       /* 1 if an OPT RR was found in the additional section */
	uint8_t do_bit;        /* 1 if DO is set */
	uint8_t opt_flags;     /* enum kn_opt_flag bits; 0 = a good OPT or none */
	uint8_t reserved;      /* always 0 */
	uint16_t opt_rdata_off;/* offset of the OPT RDATA (the options) in wire */
	uint16_t opt_rdata_len;
	uint16_t cookie_off;   /* offset of the first COOKIE option's data, 0 if none */
	uint16_t cookie_len;   /* its length (not validated: 8 or 16..40 per RFC 7873) */
	/* the question name, uncompressed wire form, and its copy with ASCII A-Z
	 * lower-cased (the cache key and 0x20 both need it) */
	uint8_t qname[256];
	uint8_t qname_lower[256];
};

/* Parse a DNS query of len bytes at wire. Reads nothing outside
 * wire[0..len). Pointer rule for every name (question and records), the same
 * as dnspython 2.9 dns.name.from_wire_parser: each pointer must point
 * strictly before the previous pointer target (the first one strictly before
 * the name's own start), at most 16 hops, and the labels read after a jump
 * must end before the start of the segment that jumped. So a question name
 * (at offset 12) can only point into the header. Records of all three
 * sections are walked (names, 10-byte fixed part, RDLENGTH-bounded RDATA,
 * RDATA content is not checked except for OPT options' TLV framing) to find
 * the OPT RR. Returns an enum kn_rc code (0 on success). */
int kn_parse_query(const uint8_t *wire, size_t len, struct kn_query *out);

/* Build the exact cache key (CACHE_KEY_DEF in cache/keys.py, the same bytes
 * as key_from_wire(qname_wire, bytes([tag]), rtype)) into out[0..outlen).
 * qname_wire must be exactly one uncompressed wire name: labels <= 63 bytes,
 * no label types 0x40/0x80/0xC0 (no pointers), total <= 255 bytes, ending in
 * the root label at qname_len - 1 (trailing bytes are KN_EMALF).
 * Returns the key length (> 0), or KN_EMALF, KN_EKEYLEN, KN_ENOSPC. */
int kn_cache_key(const uint8_t *qname_wire, size_t qname_len, uint8_t tag,
		 uint16_t rtype, uint8_t *out, size_t outlen);

/* THE rule of which ranks may be served as an answer to a client, for every
 * path (cache/api.py is_answer_rank wraps it, workers/layers/cache.py and
 * kn_answer use it; native/pure.py rank_is_answer is its twin):
 * no bits outside 0x3F, AUTH (16) set, and the state part
 * (rank & ~(AUTH|SECURE)) is not BOGUS (5). Returns 1 or 0. */
int kn_rank_is_answer(unsigned int rank);

/* Answer a query directly from a positive cache value (the fast path).
 * q[0..qlen) is the query wire and pq its kn_parse_query result (KN_OK);
 * pq is cross-checked against q (question bytes, offsets), not trusted.
 * val[0..vlen) is a cache value in the cache/entry.py layout.
 * Query eligible: opcode 0, QR clear, RD set, AD and CD clear, QDCOUNT 1,
 * ANCOUNT = NSCOUNT = 0, ARCOUNT <= has_opt, a good OPT (opt_flags 0) of
 * EDNS version 0 without DO if any, QCLASS IN, QTYPE not 0, 41 or 128..255, and an uncompressed
 * question name. Else KN_ENOTELIG.
 * Value usable: >= 14 bytes, flags only FLAG_RRSIGS (0x01), type == qtype,
 * kn_rank_is_answer(rank), remaining
 * TTL > 0 (remaining = ttl - (now - inception) if now > inception, else
 * ttl), count >= 1, every length inside vlen, payload (RRSIG part included,
 * it is skipped, not put on the wire) ending exactly at vlen. Else
 * KN_EVALUE.
 * Answer: id copied; flags QR|RA|(query RD, CD), opcode/AA/TC/AD/rcode 0;
 * counts 1, count, 0, has_opt; the question bytes q[12..question_end)
 * verbatim; count records: owner 0xC00C, type qtype, class IN, TTL remaining,
 * rdata as stored; if has_opt: OPT with root owner, class bufsize, ext rcode
 * 0, version 0, flags DO copied from the query, no options.
 * Returns the answer length (> 0) written to out, or KN_ENOSPC if it would
 * be longer than min(maxlen, outlen), or KN_ENOTELIG / KN_EVALUE. Nothing
 * is written to out unless the answer is returned. */
int kn_answer(const uint8_t *q, size_t qlen, const struct kn_query *pq,
	      const uint8_t *val, size_t vlen, uint32_t now, uint16_t bufsize,
	      size_t maxlen, uint8_t *out, size_t outlen);

/* CDEF-END */

#endif /* KRESD_NATIVE_H */
