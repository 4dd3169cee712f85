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

/* ---- the packet cache and the UDP batch (fastpath.c) --------------------
 *
 * A per-process cache of whole answers (as PowerDNS Recursor's packet cache)
 * in front of the shared LMDB cache. Python inserts an answer the resolver
 * produced from the cache alone (no upstream query), for a query every layer
 * lets through (Layer.fast_ok); C answers the same question later by copying
 * it with the client's ID and question bytes (its 0x20 case) and every TTL
 * lowered by the seconds since the insertion, or with the header + question
 * (+ OPT) and TC=1 when it does not fit the client's UDP size: the bytes the
 * full path would send at that time (tests/property/test_native_pcache.py).
 * All memory is the caller's: struct kn_pcache points at an index and an
 * arena the caller allocated. A full arena or index is emptied at once
 * (then refilled by the resolver); entries whose smallest TTL ran out are
 * misses. The caller empties it (kn_pc_flush) when the shared cache's
 * generation changes (cache.clear() in any fork) or the configuration may
 * have changed (a console command, a Lua event). */

#define KN_PC_ANSWER_MAX 4096  /* longer answers are not kept */
#define KN_PC_TTLS_MAX 255     /* records with a TTL per kept answer */
#define KN_BATCH_MAX 64        /* datagrams per kn_udp_batch call */
#define KN_DGRAM_MAX 4096      /* longer client datagrams are dropped */
#define KN_NETS_MAX 16         /* client subnets that always take the full path */

/* Bits of the `kind` of a kept answer (the stats of a hit). */
enum kn_pc_kind {
	KN_KIND_RCODE = 0x0F,   /* the rcode (0 NOERROR or 3 NXDOMAIN) */
	KN_KIND_NODATA = 0x10,  /* NOERROR without answer records */
	KN_KIND_AD = 0x20,      /* AD set in the answer */
	KN_KIND_AA = 0x40,      /* AA set in the answer */
	KN_KIND_TC = 0x80,      /* the TC=1 form was sent (set per answer, not kept) */
	KN_KIND_EDNS = 0x100,   /* the answer carries an OPT RR */
	KN_KIND_DO = 0x200,     /* ... with DO set */
	KN_KIND_CD = 0x400,     /* CD set in the answer */
	KN_KIND_RD = 0x800      /* RD set in the answer */
};

/* The packet cache. The caller allocates slots and hashes (nslots uint32
 * each, nslots a power of two >= 4) and the arena (arena_size bytes, a
 * multiple of 8, at most 1 GiB), sets those five fields and calls
 * kn_pc_flush. C keeps the rest. */
struct kn_pcache {
	uint32_t nslots;
	uint32_t arena_size;
	uint32_t *slots;      /* 0 = empty, else (arena offset / 8) + 1 */
	uint32_t *hashes;     /* the key hash of each used slot */
	uint8_t *arena;
	uint32_t used;        /* arena bytes in use */
	uint32_t count;       /* live index slots (at most nslots / 2) */
	uint64_t gen;         /* the generation the entries belong to */
	uint64_t flushes;     /* times emptied (full, or kn_pc_flush) */
};

/* Empty the cache and tag it with generation gen. */
void kn_pc_flush(struct kn_pcache *pc, uint64_t gen);

/* The packet-cache key of a query, or a negative code: KN_ESHORT/KN_EMALF/...
 * from kn_parse_query, KN_ENOTELIG when the query may not use the packet
 * cache, KN_ENOSPC when outlen is too small (258 bytes always suffice).
 * Eligible: parse rc KN_OK, QR/opcode/AA/TC/Z/rcode all 0, RD set,
 * QDCOUNT 1, ANCOUNT = NSCOUNT = 0, ARCOUNT = has_opt, if OPT: version 0,
 * ext rcode 0, no options (opt_flags 0, opt_rdata_len 0); QCLASS IN; QTYPE
 * not 0, 41 or 128..255; an uncompressed question name.
 * Key: qname_lower, QTYPE (2 bytes, big endian), one byte of query bits:
 * 1 RD, 2 CD, 4 AD, 8 has OPT, 16 DO. */
int kn_pc_key(const uint8_t *q, size_t qlen, uint8_t *out, size_t outlen);

/* Keep the answer a[0..alen) (what was sent for the query q[0..qlen) at
 * unix time now) for later hits. Returns 0 when kept, or:
 *  KN_ENOTELIG  the query is not eligible (kn_pc_key);
 *  KN_EVALUE    the answer is not one to keep: not a reply to this query
 *               (ID, question bytes ignoring ASCII case, RD, CD), QR clear,
 *               opcode not 0, TC set, rcode not NOERROR/NXDOMAIN, QDCOUNT
 *               not 1, a record running past the end or bytes after the
 *               last, an OPT RR not the last record of the additional
 *               section, with options, an ext rcode or when the query had
 *               none (or none when it had one), no record with a TTL, more
 *               than KN_PC_TTLS_MAX of them, or a smallest TTL of 0;
 *  KN_ENOSPC    alen > KN_PC_ANSWER_MAX, or the entry is larger than the
 *               arena.
 * An entry of the same key is replaced. When the arena or the index is
 * full, the cache is emptied first. */
int kn_pc_insert(struct kn_pcache *pc, const uint8_t *q, size_t qlen,
		 const uint8_t *a, size_t alen, uint32_t now);

/* Answer the query q[0..qlen) from the packet cache at time now: the kept
 * answer with q's ID, q's question bytes and each TTL lowered by
 * now - (insertion time) (0 if now is earlier), when its length fits the
 * client's UDP limit (512 without OPT, else max(512, min(the query's
 * payload, bufsize))); else the header (ID from q, the kept flags with TC
 * set), q's question and the kept OPT RR alone, if that fits. Returns the
 * length written to out (> 0), or 0: a miss (not eligible, no entry, its
 * smallest TTL ran out: now >= insertion time + that TTL, or nothing fits
 * min(limit, outlen)). *kind gets the enum kn_pc_kind bits of a hit. */
int kn_pc_answer(const struct kn_pcache *pc, const uint8_t *q, size_t qlen,
		 uint32_t now, uint16_t bufsize, uint8_t *out, size_t outlen,
		 unsigned int *kind);

/* One batch of a UDP listening socket, owned by the caller and reused. */
struct kn_batch {
	/* in */
	uint32_t now;          /* unix seconds */
	uint16_t bufsize;      /* net.bufsize: our EDNS payload, caps the limit */
	uint8_t lookup;        /* 0: no packet-cache answers, everything is a miss */
	uint8_t nnets;         /* client subnets in net_* that are always misses */
	uint8_t net_family[16];   /* 4 or 6 */
	uint8_t net_bits[16];     /* prefix length */
	uint8_t net_addr[16][16]; /* network address bytes (4 or 16 used) */
	struct kn_rl *rl;      /* NULL, or the rate limit every datagram passes first */
	/* out, set by each call */
	uint32_t nrecv;        /* datagrams received */
	uint32_t nmiss;        /* handed back to the caller: miss[0..nmiss) */
	int32_t err;           /* errno of a failed recvmmsg (not EAGAIN), else 0 */
	/* out, cumulative: added to by every call, zeroed by the caller when it
	 * takes them (so the hot path does no per-batch bookkeeping) */
	uint32_t nsent;        /* answers sent */
	uint32_t nunsent;      /* answers sendmmsg did not take (dropped) */
	uint32_t nbig;         /* datagrams longer than KN_DGRAM_MAX (dropped) */
	uint32_t hits;         /* counts of the answers sent, by kind */
	uint32_t noerror;
	uint32_t nxdomain;
	uint32_t nodata;
	uint32_t tc;
	uint32_t edns;
	uint32_t dobit;
	uint32_t cd;
	uint32_t ad;
	uint32_t aa;
	uint32_t rd;
	uint16_t miss[64];     /* indexes into len/addr/rbuf of the misses */
	uint16_t len[64];
	uint32_t addrlen[64];
	uint8_t addr[64][128]; /* struct sockaddr_storage of each sender */
	uint8_t rbuf[64][4096];
	uint8_t sbuf[64][4096];
};

/* Rate limiting (ratelimit.c): a token bucket per client prefix in a table
 * the caller provides (shared between forks: a MAP_SHARED file). */
#define KN_RL_EXEMPT_MAX 16
#define KN_RL_INSTANT_MAX 1000000 /* larger instant limits are clamped */
enum kn_rl_verdict { KN_RL_PASS = 0, KN_RL_TC = 1, KN_RL_DROP = 2 };

struct kn_rl {
	uint64_t *buckets;     /* nbuckets words (8-byte aligned), shared */
	uint64_t *shared;      /* [0]: limited queries of all forks (slip counter) */
	uint32_t nbuckets;     /* a power of two; 0 (or not a power): everything passes */
	uint32_t rate;         /* queries per second per prefix */
	uint32_t instant;      /* bucket size: queries at once per prefix */
	uint32_t slip;         /* 0: drop every limited query; N: every Nth gets TC=1 */
	uint32_t seed;         /* hashed before the prefix (0: none), the same in every fork:
	                        * a secret, so that nobody can pick prefixes that share a victim's bucket */
	uint8_t v4_bits;       /* prefix length of an IPv4 bucket */
	uint8_t v6_bits;       /* prefix length of an IPv6 bucket */
	uint8_t nexempt;       /* senders in ex_* are never limited */
	uint8_t dry_run;       /* count the limited queries, but let them pass */
	uint8_t ex_family[16];
	uint8_t ex_bits[16];
	uint8_t ex_addr[16][16];
	/* out, cumulative, this process only (the caller zeroes them) */
	uint32_t nlimited;     /* kn_rl_check verdicts TC or DROP */
	uint32_t ntc;          /* kn_udp_batch: TC answers sent */
	uint32_t ndrop;        /* kn_udp_batch: limited datagrams dropped */
};

/* The verdict for one sender (a struct sockaddr_in/in6; other families
 * pass) at now_ms (monotonic milliseconds, wrapping): KN_RL_PASS, or for a
 * query beyond the limit KN_RL_TC (every slip-th limited query of all forks)
 * or KN_RL_DROP. Updates the sender's bucket with atomic operations. */
int kn_rl_check(struct kn_rl *rl, const uint8_t *sa, uint32_t now_ms);

/* The TC=1 answer to query q: its header with QR and TC set (ID, opcode, RD
 * and CD kept, rcode 0, counts 1/0/0/0) and its question. Returns its length,
 * KN_EMALF when q is not a well-formed one-question query (then: drop), or
 * KN_ENOSPC when outlen is too small. */
int kn_rl_tc(const uint8_t *q, size_t qlen, uint8_t *out, size_t outlen);

/* Receive up to KN_BATCH_MAX datagrams from the non-blocking UDP socket fd
 * (recvmmsg), answer the packet-cache hits (kn_pc_answer with b->now and
 * b->bufsize, unless b->lookup is 0 or the sender is inside one of the
 * b->nnets subnets) with one sendmmsg, and leave the rest in b->miss for the
 * caller. With b->rl set, every datagram first passes kn_rl_check: a TC
 * verdict sends kn_rl_tc's answer, a DROP (or an unparsable TC) drops it.
 * Returns the number received (0 when nothing was waiting), or -1 when
 * recvmmsg failed (b->err). */
int kn_udp_batch(int fd, const struct kn_pcache *pc, struct kn_batch *b);

/* ---- the plainest upstream reply (reply.c) ------------------------------
 *
 * The cache-miss fast path (workers/fastmiss.py) asks one question and takes
 * the reply only when it is the plainest positive answer; anything else goes
 * to the full path (workers/wire.py parse_reply with dnspython).
 * native/pure.py reply_rrset is the twin (same verdicts, same records). */

#define KN_REPLY_MAX 64  /* records of the answer section kn_reply_rrset takes */

struct kn_reply {
	uint32_t ttl;                    /* smallest TTL of the qtype records */
	uint16_t nrd;                    /* qtype records, at rd_off (fixed length) */
	uint16_t nsig;                   /* RRSIG records, at sig_off, sig_len long */
	uint16_t rd_off[KN_REPLY_MAX];
	uint16_t sig_off[KN_REPLY_MAX];
	uint16_t sig_len[KN_REPLY_MAX];
	uint32_t sig_ttl[KN_REPLY_MAX];
};

/* Is r[0..rlen) the plainest answer to (qname[0..qlen), qtype IN) with ID
 * qid? QR set, opcode 0, TC 0, RCODE 0; QDCOUNT 1, ANCOUNT 1..KN_REPLY_MAX,
 * NSCOUNT 0, ARCOUNT <= 1; the question exactly qname (byte for byte) and
 * qtype/IN; qtype A (rdata 4 bytes) or AAAA (16); every answer record owned
 * by the question name (the pointer C0 0C, or the name itself in any ASCII
 * case), class IN, and either of qtype with its rdata length (distinct
 * rdatas) or, with sigs != 0, an RRSIG covering qtype whose signer name is
 * uncompressed and followed by at least one byte (distinct rdatas); the
 * additional record, if any, an OPT with root owner and extended RCODE 0;
 * nothing after it. TTLs >= 2^31 count as 0; the smallest qtype TTL must lie
 * in [min_ttl, max_ttl]. Returns KN_OK with *out filled, KN_EMALF for bytes
 * that are no such reply (the caller hands the reply to the full path). */
int kn_reply_rrset(const uint8_t *r, size_t rlen, uint16_t qid, const uint8_t *qname, size_t qlen,
		   uint16_t qtype, uint32_t min_ttl, uint32_t max_ttl, int sigs, struct kn_reply *out);

/* CDEF-END */

/* Internal to native/ (ratelimit.c, used by fastpath.c too; not in the cffi
 * API): the address of a struct sockaddr_storage and its family (4 or 6; 0
 * for any other family), and whether an address of that family lies in one
 * of the first n (at most 16) subnets given as family/prefix length/address. */
int kn_sa_addr(const uint8_t *sa, const uint8_t **addr);
int kn_in_subnets(int family, const uint8_t *addr, unsigned n, const uint8_t *net_family,
		  const uint8_t *net_bits, const uint8_t (*net_addr)[16]);

#endif /* KRESD_NATIVE_H */
