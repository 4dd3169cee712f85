/* asan_harness.c - drive every function of native/ under ASan/UBSan.
 *
 * Owns: a stand-alone main() used only by test_native_asan.py, for pkt.c,
 * key.c, answer.c, fastpath.c, ratelimit.c and reply.c. Modes, each reading records from the file argv[2]
 * and copying every input into a heap block of exactly its length (so any
 * read past it is a heap-buffer-overflow report):
 *   parse  <file>: records are (u32 LE length, bytes). One line per record:
 *     <kn_parse_query rc> <qname_len or -1> <kn_cache_key rc on the record as
 *     a name, outlen 511> <kn_cache_key rc with outlen 8>
 *   answer <file>: records are (u32 LE qlen, query, u32 LE vlen, value,
 *     u32 LE now, u32 LE maxlen, u32 LE outlen). The query is parsed into a
 *     zeroed kn_query (whatever the rc: kn_answer must not trust it), then
 *     kn_answer writes into a heap block of exactly outlen bytes. One line
 *     per record: <parse rc> <kn_answer rc> <answer bytes in hex, or ->
 *   ranks: one line with kn_rank_is_answer(r) for r = 0..511, as 0/1 digits.
 *   pcache <file>: records are (u32 LE qlen, query, u32 LE alen, answer,
 *     u32 LE q2len, query2, u32 LE now). One packet cache of 16 slots and a
 *     4096-byte arena (heap blocks of exactly that size) lives across all
 *     records: kn_pc_insert(query, answer, now), then kn_pc_answer(query2,
 *     now + 1) into a heap block of exactly 4096 bytes. One line per record:
 *     <insert rc> <answer rc> <kind> <answer hex, or ->
 *   batch <file>: the records of pcache mode are inserted (same cache), then
 *     every query2 is written to one end of an AF_UNIX datagram socketpair and
 *     kn_udp_batch (a heap struct kn_batch of exactly its size) runs on the
 *     other end until it returns 0. Prints "<received> <hits> <misses>".
 *   ratelimit <file>: records are (u32 LE salen, sockaddr, u32 LE now_ms,
 *     u32 LE qlen, query, u32 LE outlen). One kn_rl (16 buckets and the
 *     counter word in heap blocks of exactly their size; rate 50, instant 3,
 *     slip 2, /24 and /56, exempt 10.0.0.0/8) lives across all records; the
 *     sockaddr is copied into a block of exactly 28 bytes. One line per
 *     record: <kn_rl_check verdict> <kn_rl_tc rc> <tc answer hex, or ->
 *   batchrl <file>: the pcache records' query2s are sent over UDP on
 *     127.0.17.1 (ephemeral ports) to a socket that kn_udp_batch reads with a
 *     rate limit of instant 3, rate 0 (no refill), slip 2 and no packet
 *     cache answers. Prints "<received> <misses> <tc sent> <dropped>".
 *   reply <file>: records are (u32 LE rlen, reply, u32 LE qlen, qname,
 *     u32 LE qid, u32 LE qtype, u32 LE sigs); kn_reply_rrset with TTL bounds
 *     5..86400 into a heap struct kn_reply of exactly its size. One line per
 *     record: <rc> and, for KN_OK, <ttl> <nrd> <nsig> and the rd_off, then
 *     the sig_off/sig_len/sig_ttl triples.
 * Must not: be part of the extension module.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "kresd_native.h"

static int read_u32(FILE *f, size_t *out)
{
	unsigned char b[4];
	if (fread(b, 1, 4, f) != 4)
		return -1;
	*out = (size_t)b[0] | ((size_t)b[1] << 8) | ((size_t)b[2] << 16) | ((size_t)b[3] << 24);
	return 0;
}

/* A heap block of exactly len bytes read from f (1 byte allocated for 0). */
static uint8_t *read_exact(FILE *f, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		exit(2);
	if (len && fread(p, 1, len, f) != len)
		exit(2);
	if (!len)
		return p;
	uint8_t *exact = malloc(len); /* a fresh block: no slack after len */
	if (!exact)
		exit(2);
	memcpy(exact, p, len);
	free(p);
	return exact;
}

/* out[0..n) in hex and a newline, or "-" when n <= 0. */
static void print_hex(const uint8_t *out, int n)
{
	if (n <= 0)
		printf("-");
	for (int i = 0; i < n; i++)
		printf("%02x", out[i]);
	printf("\n");
}

static int mode_parse(FILE *f)
{
	struct kn_query *q = malloc(sizeof(*q));
	uint8_t *key = malloc(KN_MAX_KEY_LEN);
	uint8_t *small = malloc(8);
	if (!q || !key || !small)
		return 2;
	size_t len;
	while (read_u32(f, &len) == 0) {
		uint8_t *exact = read_exact(f, len);
		int rc = kn_parse_query(exact, len, q);
		int qlen = (rc == KN_OK || rc == KN_ETRAIL || rc == KN_EBADOPT) ? q->qname_len : -1;
		int k1 = kn_cache_key(exact, len, 'E', 1, key, KN_MAX_KEY_LEN);
		int k2 = kn_cache_key(exact, len, 'E', 1, small, 8);
		printf("%d %d %d %d\n", rc, qlen, k1, k2);
		free(exact);
	}
	free(small);
	free(key);
	free(q);
	return 0;
}

static int mode_answer(FILE *f)
{
	size_t qlen, vlen, now, maxlen, outlen;
	while (read_u32(f, &qlen) == 0) {
		uint8_t *q = read_exact(f, qlen);
		if (read_u32(f, &vlen) != 0)
			return 2;
		uint8_t *val = read_exact(f, vlen);
		if (read_u32(f, &now) || read_u32(f, &maxlen) || read_u32(f, &outlen))
			return 2;
		struct kn_query *pq = calloc(1, sizeof(*pq));
		uint8_t *out = malloc(outlen ? outlen : 1);
		if (!pq || !out)
			return 2;
		int prc = kn_parse_query(q, qlen, pq);
		int rc = kn_answer(q, qlen, pq, val, vlen, (uint32_t)now, 1232, maxlen, out, outlen);
		printf("%d %d ", prc, rc);
		print_hex(out, rc);
		free(out);
		free(pq);
		free(val);
		free(q);
	}
	return 0;
}

static uint8_t *read_record(FILE *f, size_t *len)
{
	if (read_u32(f, len) != 0)
		return NULL;
	return read_exact(f, *len);
}

static struct kn_pcache *small_cache(void)
{
	struct kn_pcache *pc = calloc(1, sizeof(*pc));
	if (!pc)
		exit(2);
	pc->nslots = 16;
	pc->arena_size = 4096;
	pc->slots = malloc(16 * sizeof(uint32_t));
	pc->hashes = malloc(16 * sizeof(uint32_t));
	pc->arena = malloc(4096);
	if (!pc->slots || !pc->hashes || !pc->arena)
		exit(2);
	kn_pc_flush(pc, 0);
	return pc;
}

static void free_cache(struct kn_pcache *pc)
{
	free(pc->slots);
	free(pc->hashes);
	free(pc->arena);
	free(pc);
}

/* Reads one pcache record; returns 0 and the three blocks, or -1 at the end. */
static int pc_record(FILE *f, uint8_t **q, size_t *qlen, uint8_t **a, size_t *alen,
		     uint8_t **q2, size_t *q2len, size_t *now)
{
	*q = read_record(f, qlen);
	if (!*q)
		return -1;
	*a = read_record(f, alen);
	*q2 = *a ? read_record(f, q2len) : NULL;
	if (!*a || !*q2 || read_u32(f, now) != 0)
		exit(2);
	return 0;
}

static int mode_pcache(FILE *f)
{
	struct kn_pcache *pc = small_cache();
	uint8_t *q, *a, *q2;
	size_t qlen, alen, q2len, now;
	while (pc_record(f, &q, &qlen, &a, &alen, &q2, &q2len, &now) == 0) {
		int irc = kn_pc_insert(pc, q, qlen, a, alen, (uint32_t)now);
		uint8_t *out = malloc(4096);
		unsigned kind = 0;
		if (!out)
			return 2;
		int rc = kn_pc_answer(pc, q2, q2len, (uint32_t)now + 1, 1232, out, 4096, &kind);
		printf("%d %d %u ", irc, rc, rc > 0 ? kind : 0);
		print_hex(out, rc);
		free(out);
		free(q);
		free(a);
		free(q2);
	}
	free_cache(pc);
	return 0;
}

static int mode_batch(FILE *f)
{
	struct kn_pcache *pc = small_cache();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 2;
	uint8_t *q, *a, *q2;
	size_t qlen, alen, q2len, now = 0;
	while (pc_record(f, &q, &qlen, &a, &alen, &q2, &q2len, &now) == 0) {
		kn_pc_insert(pc, q, qlen, a, alen, (uint32_t)now);
		if (send(sv[0], q2, q2len, 0) < 0 && errno != EAGAIN)
			return 2;
		free(q);
		free(a);
		free(q2);
	}
	struct kn_batch *b = malloc(sizeof(*b));
	if (!b)
		return 2;
	memset(b, 0, sizeof(*b));
	b->now = (uint32_t)now + 1;
	b->bufsize = 1232;
	b->lookup = 1;
	unsigned total = 0, hits = 0, misses = 0;
	for (;;) {
		int n = kn_udp_batch(sv[1], pc, b);
		if (n <= 0)
			break;
		total += (unsigned)n;
		misses += b->nmiss;
	}
	hits = b->hits; /* cumulative */
	printf("%u %u %u\n", total, hits, misses);
	free(b);
	close(sv[0]);
	close(sv[1]);
	free_cache(pc);
	return 0;
}

static struct kn_rl *make_rl(uint32_t nbuckets, uint32_t rate, uint32_t instant, uint32_t slip)
{
	struct kn_rl *rl = calloc(1, sizeof(*rl));
	if (!rl)
		exit(2);
	rl->buckets = calloc(nbuckets, sizeof(uint64_t));
	rl->shared = calloc(1, sizeof(uint64_t));
	if (!rl->buckets || !rl->shared)
		exit(2);
	rl->nbuckets = nbuckets;
	rl->rate = rate;
	rl->instant = instant;
	rl->slip = slip;
	rl->v4_bits = 24;
	rl->v6_bits = 56;
	return rl;
}

static void free_rl(struct kn_rl *rl)
{
	free(rl->buckets);
	free(rl->shared);
	free(rl);
}

static int mode_ratelimit(FILE *f)
{
	struct kn_rl *rl = make_rl(16, 50, 3, 2);
	rl->nexempt = 1;
	rl->ex_family[0] = 4;
	rl->ex_bits[0] = 8;
	rl->ex_addr[0][0] = 10;
	size_t salen, now, qlen, outlen;
	uint8_t *sa_rec;
	while ((sa_rec = read_record(f, &salen)) != NULL) {
		uint8_t *q = NULL;
		if (read_u32(f, &now) != 0 || !(q = read_record(f, &qlen)) || read_u32(f, &outlen) != 0)
			exit(2);
		uint8_t *sa = calloc(1, 28), *out = malloc(outlen ? outlen : 1);
		if (!sa || !out)
			return 2;
		memcpy(sa, sa_rec, salen < 28 ? salen : 28);
		int v = kn_rl_check(rl, sa, (uint32_t)now);
		int rc = kn_rl_tc(q, qlen, out, outlen);
		printf("%d %d ", v, rc);
		print_hex(out, rc);
		free(sa);
		free(out);
		free(q);
		free(sa_rec);
	}
	free_rl(rl);
	return 0;
}

static int udp_on(struct sockaddr_in *a)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	socklen_t len = sizeof(*a);
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = inet_addr("127.0.17.1");
	if (fd < 0 || bind(fd, (struct sockaddr *)a, sizeof(*a)) != 0
	    || getsockname(fd, (struct sockaddr *)a, &len) != 0)
		exit(2);
	return fd;
}

static int mode_batchrl(FILE *f)
{
	struct kn_pcache *pc = small_cache();
	struct sockaddr_in sa, ca;
	int srv = udp_on(&sa), cli = udp_on(&ca);
	uint8_t *q, *a, *q2;
	size_t qlen, alen, q2len, now = 0;
	unsigned sent = 0;
	while (pc_record(f, &q, &qlen, &a, &alen, &q2, &q2len, &now) == 0) {
		if (sendto(cli, q2, q2len, 0, (struct sockaddr *)&sa, sizeof sa) >= 0)
			sent++;
		free(q);
		free(a);
		free(q2);
	}
	struct kn_batch *b = malloc(sizeof(*b));
	if (!b)
		return 2;
	memset(b, 0, sizeof(*b));
	b->rl = make_rl(16, 0, 3, 2);
	unsigned total = 0, misses = 0;
	for (;;) {
		int n = kn_udp_batch(srv, pc, b);
		if (n <= 0)
			break;
		total += (unsigned)n;
		misses += b->nmiss;
	}
	printf("%u %u %u %u\n", total, misses, b->rl->ntc, b->rl->ndrop);
	free_rl(b->rl);
	free(b);
	close(srv);
	close(cli);
	free_cache(pc);
	return sent == total ? 0 : 3;
}

static int mode_reply(FILE *f)
{
	size_t rlen, qlen, qid, qtype, sigs;
	while (read_u32(f, &rlen) == 0) {
		uint8_t *r = read_exact(f, rlen);
		if (read_u32(f, &qlen) != 0)
			return 2;
		uint8_t *qname = read_exact(f, qlen);
		if (read_u32(f, &qid) || read_u32(f, &qtype) || read_u32(f, &sigs))
			return 2;
		struct kn_reply *out = malloc(sizeof(*out));
		if (!out)
			return 2;
		int rc = kn_reply_rrset(r, rlen, (uint16_t)qid, qname, qlen, (uint16_t)qtype, 5, 86400,
					(int)sigs, out);
		printf("%d", rc);
		if (rc == KN_OK) {
			printf(" %u %u %u", (unsigned)out->ttl, (unsigned)out->nrd, (unsigned)out->nsig);
			for (unsigned i = 0; i < out->nrd; i++)
				printf(" %u", (unsigned)out->rd_off[i]);
			for (unsigned i = 0; i < out->nsig; i++)
				printf(" %u/%u/%u", (unsigned)out->sig_off[i], (unsigned)out->sig_len[i],
				       (unsigned)out->sig_ttl[i]);
		}
		printf("\n");
		free(out);
		free(qname);
		free(r);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "ranks") == 0) {
		for (unsigned r = 0; r < 512; r++)
			putchar(kn_rank_is_answer(r) ? '1' : '0');
		putchar('\n');
		return 0;
	}
	if (argc != 3)
		return 2;
	FILE *f = fopen(argv[2], "rb");
	if (!f)
		return 2;
	int rc = 2;
	if (strcmp(argv[1], "parse") == 0)
		rc = mode_parse(f);
	else if (strcmp(argv[1], "answer") == 0)
		rc = mode_answer(f);
	else if (strcmp(argv[1], "pcache") == 0)
		rc = mode_pcache(f);
	else if (strcmp(argv[1], "batch") == 0)
		rc = mode_batch(f);
	else if (strcmp(argv[1], "ratelimit") == 0)
		rc = mode_ratelimit(f);
	else if (strcmp(argv[1], "batchrl") == 0)
		rc = mode_batchrl(f);
	else if (strcmp(argv[1], "reply") == 0)
		rc = mode_reply(f);
	fclose(f);
	return rc;
}
