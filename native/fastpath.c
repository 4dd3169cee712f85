/* fastpath.c - the packet cache and the UDP batch of the cache-hit fast path.
 *
 * Owns: kn_pc_key (which queries may use the packet cache, and their key),
 * kn_pc_insert / kn_pc_answer / kn_pc_flush (a hash index over an arena of
 * kept answers, all in caller-owned memory; the entry layout below), and
 * kn_udp_batch (recvmmsg -> parse -> packet-cache answer -> sendmmsg, the
 * misses left for the caller). See kresd_native.h for the exact contract.
 * Must not: allocate, keep global state, touch Python objects, block (the
 * socket is non-blocking and MSG_DONTWAIT is used), or read or write outside
 * the caller's buffers. Inserted answers are untrusted bytes: every record is
 * bounds-checked before anything is kept.
 * The pure-Python twin is native/pure.py:PacketCache (same codes, same bytes,
 * same hits and misses, same flushes).
 *
 * Entry layout in the arena (at an 8-byte aligned offset):
 *   u32 expire      insertion time + smallest TTL (a hit needs now < expire)
 *   u32 inserted    insertion time
 *   u16 keylen, u16 alen, u16 qend (end of the question), u16 opt_off (0: no
 *   OPT; else the OPT RR is a[opt_off..alen)), u16 nttl, u16 kind
 *   u16 ttl_off[nttl]  offsets of the TTL fields in the answer
 *   key[keylen], answer[alen], padding to 8.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "kresd_native.h"
#include "wire.h"

#define HDR_LEN 12
#define F_QR 0x8000
#define F_OPCODE 0x7800
#define F_AA 0x0400
#define F_TC 0x0200
#define F_RD 0x0100
#define F_Z 0x0040
#define F_AD 0x0020
#define F_CD 0x0010
#define F_RCODE 0x000F
#define TYPE_OPT 41
#define CLASS_IN 1
#define EDNS_DO 0x8000
#define ENTRY_HDR 20
#define KEY_MAX (KN_QNAME_MAX + 3)
#define MIN_UDP 512

static inline uint16_t get16(const uint8_t *p) /* native-endian field of an entry */
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint8_t lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* FNV-1a, 32 bits (the twin computes the same). */
static uint32_t key_hash(const uint8_t *k, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= k[i];
		h *= 16777619u;
	}
	return h;
}

/* Eligibility of a parsed query and its key; see kresd_native.h. */
static int key_of(const uint8_t *q, size_t qlen, const struct kn_query *pq, int rc,
		  uint8_t *out, size_t outlen)
{
	if (rc != KN_OK)
		return rc;
	if (pq->flags & (F_QR | F_OPCODE | F_AA | F_TC | F_Z | F_RCODE))
		return KN_ENOTELIG;
	if (!(pq->flags & F_RD) || pq->qdcount != 1 || pq->ancount || pq->nscount
	    || pq->arcount != pq->has_opt)
		return KN_ENOTELIG;
	if (pq->has_opt && (pq->edns_version || pq->ext_rcode || pq->opt_flags || pq->opt_rdata_len))
		return KN_ENOTELIG;
	if (pq->qclass != CLASS_IN || pq->qtype == 0 || pq->qtype == TYPE_OPT
	    || (pq->qtype >= 128 && pq->qtype <= 255))
		return KN_ENOTELIG;
	size_t n = pq->qname_len;
	if (n < 1 || n > KN_QNAME_MAX || pq->question_end != HDR_LEN + n + 4 || pq->question_end > qlen)
		return KN_ENOTELIG;
	if (outlen < n + 3)
		return KN_ENOSPC;
	memcpy(out, pq->qname_lower, n);
	wr16(out + n, pq->qtype);
	uint8_t bits = 1; /* RD */
	if (pq->flags & F_CD)
		bits |= 2;
	if (pq->flags & F_AD)
		bits |= 4;
	if (pq->has_opt)
		bits |= 8;
	if (pq->do_bit)
		bits |= 16;
	out[n + 2] = bits;
	(void)q;
	return (int)(n + 3);
}

int kn_pc_key(const uint8_t *q, size_t qlen, uint8_t *out, size_t outlen)
{
	struct kn_query pq;
	int rc = kn_parse_query(q, qlen, &pq);
	return key_of(q, qlen, &pq, rc, out, outlen);
}

void kn_pc_flush(struct kn_pcache *pc, uint64_t gen)
{
	memset(pc->slots, 0, (size_t)pc->nslots * sizeof(uint32_t));
	pc->used = 0;
	pc->count = 0;
	pc->gen = gen;
	pc->flushes++;
}

/* The arena entry of a key, or NULL; *slot gets the slot it is in or the
 * first empty slot of its probe sequence. */
static const uint8_t *find(const struct kn_pcache *pc, const uint8_t *key, size_t klen,
			   uint32_t h, uint32_t *slot)
{
	uint32_t mask = pc->nslots - 1;
	for (uint32_t i = h & mask;; i = (i + 1) & mask) {
		uint32_t s = pc->slots[i];
		if (s == 0) {
			*slot = i;
			return NULL;
		}
		if (pc->hashes[i] == h) {
			const uint8_t *e = pc->arena + (size_t)(s - 1) * 8;
			uint16_t nttl = get16(e + 16);
			if (get16(e + 8) == klen && memcmp(e + ENTRY_HDR + 2 * nttl, key, klen) == 0) {
				*slot = i;
				return e;
			}
		}
	}
}

/* Skip one (possibly compressed) name; -1 when it runs past len. */
static int skip_name(const uint8_t *w, size_t len, size_t *pos)
{
	size_t p = *pos, total = 0;
	for (;;) {
		if (p >= len)
			return -1;
		uint8_t b = w[p];
		if (b == 0) {
			*pos = p + 1;
			return 0;
		}
		if ((b & 0xC0) == 0xC0) {
			if (len - p < 2)
				return -1;
			*pos = p + 2;
			return 0;
		}
		if (b & 0xC0)
			return -1;
		total += (size_t)b + 1;
		if (total > KN_QNAME_MAX)
			return -1;
		p += (size_t)b + 1;
	}
}

struct walked {
	uint16_t ttl_off[KN_PC_TTLS_MAX];
	unsigned nttl;
	uint32_t min_ttl;
	size_t opt_off;
};

/* Walk every record of an answer; see kn_pc_insert for what is refused. */
static int walk_answer(const uint8_t *a, size_t alen, size_t qend, int has_opt, struct walked *w)
{
	unsigned counts[3] = { rd16(a + 6), rd16(a + 8), rd16(a + 10) };
	size_t pos = qend;
	w->nttl = 0;
	w->min_ttl = UINT32_MAX;
	w->opt_off = 0;
	for (int sec = 0; sec < 3; sec++) {
		for (unsigned i = 0; i < counts[sec]; i++) {
			if (w->opt_off)
				return KN_EVALUE; /* the OPT RR must be the last record */
			size_t start = pos;
			if (skip_name(a, alen, &pos) < 0 || alen - pos < 10)
				return KN_EVALUE;
			uint16_t type = rd16(a + pos);
			uint32_t ttl = rd32(a + pos + 4);
			uint16_t rdlen = rd16(a + pos + 8);
			size_t ttl_at = pos + 4;
			pos += 10;
			if (rdlen > alen - pos)
				return KN_EVALUE;
			pos += rdlen;
			if (type == TYPE_OPT) {
				if (sec != 2 || !has_opt || a[start] != 0 || rdlen != 0 || (ttl >> 24) != 0)
					return KN_EVALUE;
				w->opt_off = start;
				continue;
			}
			if (w->nttl >= KN_PC_TTLS_MAX)
				return KN_EVALUE;
			w->ttl_off[w->nttl++] = (uint16_t)ttl_at;
			if (ttl < w->min_ttl)
				w->min_ttl = ttl;
		}
	}
	if (pos != alen || (has_opt && !w->opt_off) || w->nttl == 0 || w->min_ttl == 0)
		return KN_EVALUE;
	return 0;
}

/* The kind bits of an answer (enum kn_pc_kind), TC excluded. */
static unsigned kind_of(const uint8_t *a, const struct walked *w)
{
	uint16_t fl = rd16(a + 2);
	unsigned k = fl & F_RCODE;
	if ((fl & F_RCODE) == 0 && rd16(a + 6) == 0)
		k |= KN_KIND_NODATA;
	if (fl & F_AD)
		k |= KN_KIND_AD;
	if (fl & F_AA)
		k |= KN_KIND_AA;
	if (fl & F_CD)
		k |= KN_KIND_CD;
	if (fl & F_RD)
		k |= KN_KIND_RD;
	if (w->opt_off) {
		k |= KN_KIND_EDNS;
		if (rd16(a + w->opt_off + 7) & EDNS_DO) /* owner (1) type class ttl: flags at +7 */
			k |= KN_KIND_DO;
	}
	return k;
}

static int check_reply(const uint8_t *q, const struct kn_query *pq, const uint8_t *a, size_t alen)
{
	size_t qend = pq->question_end;
	if (alen < qend || rd16(a) != pq->id || rd16(a + 4) != 1)
		return KN_EVALUE;
	uint16_t fl = rd16(a + 2);
	if (!(fl & F_QR) || (fl & (F_OPCODE | F_TC)))
		return KN_EVALUE;
	if ((fl & F_RCODE) != 0 && (fl & F_RCODE) != 3)
		return KN_EVALUE;
	if ((fl & (F_RD | F_CD)) != (pq->flags & (F_RD | F_CD)))
		return KN_EVALUE;
	for (size_t i = HDR_LEN; i < qend; i++)
		if (lower(a[i]) != lower(q[i]))
			return KN_EVALUE;
	return 0;
}

int kn_pc_insert(struct kn_pcache *pc, const uint8_t *q, size_t qlen,
		 const uint8_t *a, size_t alen, uint32_t now)
{
	struct kn_query pq;
	uint8_t key[KEY_MAX];
	int klen = key_of(q, qlen, &pq, kn_parse_query(q, qlen, &pq), key, sizeof key);
	if (klen < 0)
		return KN_ENOTELIG;
	if (alen > KN_PC_ANSWER_MAX)
		return KN_ENOSPC;
	int rc = check_reply(q, &pq, a, alen);
	if (rc)
		return rc;
	struct walked w;
	rc = walk_answer(a, alen, pq.question_end, pq.has_opt, &w);
	if (rc)
		return rc;
	size_t size = (ENTRY_HDR + 2 * (size_t)w.nttl + (size_t)klen + alen + 7) & ~(size_t)7;
	if (size > pc->arena_size)
		return KN_ENOSPC;
	uint32_t h = key_hash(key, (size_t)klen), slot;
	const uint8_t *old = find(pc, key, (size_t)klen, h, &slot);
	if (pc->arena_size - pc->used < size || (!old && pc->count + 1 > pc->nslots / 2)) {
		kn_pc_flush(pc, pc->gen);
		old = find(pc, key, (size_t)klen, h, &slot);
	}
	uint8_t *e = pc->arena + pc->used;
	uint32_t expire = (UINT32_MAX - now < w.min_ttl) ? UINT32_MAX : now + w.min_ttl;
	uint16_t hdr16[6] = { (uint16_t)klen, (uint16_t)alen, (uint16_t)pq.question_end,
			      (uint16_t)w.opt_off, (uint16_t)w.nttl, (uint16_t)kind_of(a, &w) };
	memcpy(e, &expire, 4);
	memcpy(e + 4, &now, 4);
	memcpy(e + 8, hdr16, sizeof hdr16);
	memcpy(e + ENTRY_HDR, w.ttl_off, 2 * (size_t)w.nttl);
	memcpy(e + ENTRY_HDR + 2 * w.nttl, key, (size_t)klen);
	memcpy(e + ENTRY_HDR + 2 * w.nttl + klen, a, alen);
	pc->slots[slot] = pc->used / 8 + 1;
	pc->hashes[slot] = h;
	pc->used += (uint32_t)size;
	if (!old)
		pc->count++;
	return 0;
}

/* A hit's answer for the parsed query; 0 on a miss. */
static int answer_of(const struct kn_pcache *pc, const uint8_t *q, size_t qlen,
		     const struct kn_query *pq, int rc, uint32_t now, uint16_t bufsize,
		     uint8_t *out, size_t outlen, unsigned *kind)
{
	uint8_t key[KEY_MAX];
	int klen = key_of(q, qlen, pq, rc, key, sizeof key);
	if (klen < 0 || pc->count == 0)
		return 0;
	uint32_t slot;
	const uint8_t *e = find(pc, key, (size_t)klen, key_hash(key, (size_t)klen), &slot);
	if (!e || now >= get32(e))
		return 0;
	uint32_t inserted = get32(e + 4);
	uint16_t alen = get16(e + 10), qend = get16(e + 12), opt_off = get16(e + 14);
	uint16_t nttl = get16(e + 16);
	const uint8_t *a = e + ENTRY_HDR + 2 * nttl + klen;
	size_t limit = MIN_UDP;
	if (pq->has_opt) {
		size_t want = pq->udp_size < bufsize ? pq->udp_size : bufsize;
		if (want > limit)
			limit = want;
	}
	if (limit > outlen)
		limit = outlen;
	unsigned k = get16(e + 18);
	if (alen <= limit) {
		memcpy(out, a, alen);
		memcpy(out + HDR_LEN, q + HDR_LEN, qend - HDR_LEN);
		uint32_t age = now > inserted ? now - inserted : 0;
		for (unsigned i = 0; i < nttl; i++) {
			uint16_t off = get16(e + ENTRY_HDR + 2 * i);
			wr32(out + off, rd32(a + off) - age);
		}
		wr16(out, pq->id);
		*kind = k;
		return alen;
	}
	size_t opt_len = opt_off ? (size_t)alen - opt_off : 0;
	if ((size_t)qend + opt_len > limit)
		return 0;
	memcpy(out, a, 4);
	wr16(out, pq->id);
	wr16(out + 2, rd16(a + 2) | F_TC);
	wr16(out + 4, 1);
	wr16(out + 6, 0);
	wr16(out + 8, 0);
	wr16(out + 10, opt_off ? 1 : 0);
	memcpy(out + HDR_LEN, q + HDR_LEN, qend - HDR_LEN);
	if (opt_len)
		memcpy(out + qend, a + opt_off, opt_len);
	*kind = k | KN_KIND_TC;
	return (int)(qend + opt_len);
}

int kn_pc_answer(const struct kn_pcache *pc, const uint8_t *q, size_t qlen,
		 uint32_t now, uint16_t bufsize, uint8_t *out, size_t outlen,
		 unsigned int *kind)
{
	struct kn_query pq;
	int rc = kn_parse_query(q, qlen, &pq);
	return answer_of(pc, q, qlen, &pq, rc, now, bufsize, out, outlen, kind);
}

/* Is the sender inside one of the batch's full-path subnets? (Not IPv4 or
 * IPv6: yes.) */
static int in_nets(const struct kn_batch *b, const uint8_t *sa)
{
	const uint8_t *addr;
	int family = kn_sa_addr(sa, &addr);
	return !family || kn_in_subnets(family, addr, b->nnets, b->net_family, b->net_bits,
					(const uint8_t (*)[16])b->net_addr);
}

static void count_hit(struct kn_batch *b, unsigned k)
{
	b->hits++;
	if (k & KN_KIND_TC)
		b->tc++;
	if ((k & KN_KIND_RCODE) == 3)
		b->nxdomain++;
	else if ((k & KN_KIND_RCODE) == 0)
		b->noerror++;
	if (k & KN_KIND_NODATA)
		b->nodata++;
	if (k & KN_KIND_EDNS)
		b->edns++;
	if (k & KN_KIND_DO)
		b->dobit++;
	if (k & KN_KIND_CD)
		b->cd++;
	if (k & KN_KIND_AD)
		b->ad++;
	if (k & KN_KIND_AA)
		b->aa++;
	if (k & KN_KIND_RD)
		b->rd++;
}

/* The rate limit's verdict on datagram i: 0 pass, -1 dropped, else the
 * length of the TC answer written to out. */
static int limited(struct kn_batch *b, int i, uint32_t now_ms, uint8_t *out)
{
	int v = kn_rl_check(b->rl, b->addr[i], now_ms);
	if (v == KN_RL_PASS)
		return 0;
	if (v == KN_RL_TC) {
		int len = kn_rl_tc(b->rbuf[i], b->len[i], out, KN_DGRAM_MAX);
		if (len > 0) {
			b->rl->ntc++;
			return len;
		}
	}
	b->rl->ndrop++;
	return -1;
}

int kn_udp_batch(int fd, const struct kn_pcache *pc, struct kn_batch *b)
{
	struct mmsghdr rm[KN_BATCH_MAX], sm[KN_BATCH_MAX];
	struct iovec riov[KN_BATCH_MAX], siov[KN_BATCH_MAX];
	b->nrecv = 0;
	b->nmiss = 0;
	b->err = 0;
	memset(rm, 0, sizeof rm);
	for (int i = 0; i < KN_BATCH_MAX; i++) {
		riov[i].iov_base = b->rbuf[i];
		riov[i].iov_len = KN_DGRAM_MAX;
		rm[i].msg_hdr.msg_iov = &riov[i];
		rm[i].msg_hdr.msg_iovlen = 1;
		rm[i].msg_hdr.msg_name = b->addr[i];
		rm[i].msg_hdr.msg_namelen = sizeof b->addr[i];
	}
	int n = recvmmsg(fd, rm, KN_BATCH_MAX, MSG_DONTWAIT, NULL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		b->err = errno;
		return -1;
	}
	b->nrecv = (uint32_t)n;
	unsigned ns = 0;
	struct kn_query pq;
	uint32_t now_ms = 0;
	if (b->rl) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
		now_ms = (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
	}
	for (int i = 0; i < n; i++) {
		b->len[i] = (uint16_t)(rm[i].msg_len > KN_DGRAM_MAX ? KN_DGRAM_MAX : rm[i].msg_len);
		b->addrlen[i] = rm[i].msg_hdr.msg_namelen;
		if (rm[i].msg_hdr.msg_flags & MSG_TRUNC) {
			b->nbig++;
			continue;
		}
		int len = 0;
		unsigned k = 0;
		if (b->rl && (len = limited(b, i, now_ms, b->sbuf[ns])) != 0) {
			if (len < 0)
				continue;
			goto send;
		}
		if (b->lookup && pc->count && !(b->nnets && in_nets(b, b->addr[i]))) {
			int rc = kn_parse_query(b->rbuf[i], b->len[i], &pq);
			len = answer_of(pc, b->rbuf[i], b->len[i], &pq, rc, b->now, b->bufsize,
					b->sbuf[ns], KN_DGRAM_MAX, &k);
		}
		if (len <= 0) {
			b->miss[b->nmiss++] = (uint16_t)i;
			continue;
		}
		count_hit(b, k);
send:
		memset(&sm[ns], 0, sizeof sm[ns]);
		siov[ns].iov_base = b->sbuf[ns];
		siov[ns].iov_len = (size_t)len;
		sm[ns].msg_hdr.msg_iov = &siov[ns];
		sm[ns].msg_hdr.msg_iovlen = 1;
		sm[ns].msg_hdr.msg_name = b->addr[i];
		sm[ns].msg_hdr.msg_namelen = rm[i].msg_hdr.msg_namelen;
		ns++;
	}
	unsigned done = 0;
	while (done < ns) {
		int s = sendmmsg(fd, sm + done, ns - done, MSG_DONTWAIT);
		if (s < 0) {
			if (errno == EINTR)
				continue;
			done++; /* this one cannot be sent (full buffer, unreachable): skip it */
			b->nunsent++;
			continue;
		}
		done += (unsigned)s;
		b->nsent += (unsigned)s;
	}
	return n;
}
