/* asan_harness.c - drive native/pkt.c and native/key.c under ASan/UBSan.
 *
 * Owns: a stand-alone main() used only by test_native_asan.py. Reads records
 * (4-byte little-endian length, then that many bytes) from the file argv[1];
 * copies each into a heap block of exactly that length (so any read past it
 * is a heap-buffer-overflow report), and prints one line per record:
 *   <kn_parse_query rc> <qname_len or -1> <kn_cache_key rc on the record as a
 *   name, outlen 511> <kn_cache_key rc with outlen 8>
 * Must not: be part of the extension module.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kresd_native.h"

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	FILE *f = fopen(argv[1], "rb");
	if (!f)
		return 2;
	struct kn_query *q = malloc(sizeof(*q));
	uint8_t *key = malloc(KN_MAX_KEY_LEN);
	uint8_t *small = malloc(8);
	if (!q || !key || !small)
		return 2;
	unsigned char lenbuf[4];
	while (fread(lenbuf, 1, 4, f) == 4) {
		size_t len = (size_t)lenbuf[0] | ((size_t)lenbuf[1] << 8) |
			     ((size_t)lenbuf[2] << 16) | ((size_t)lenbuf[3] << 24);
		uint8_t *wire = malloc(len ? len : 1);
		if (!wire || fread(wire, 1, len, f) != len)
			return 2;
		uint8_t *exact = malloc(len);
		if (len && !exact)
			return 2;
		if (len)
			memcpy(exact, wire, len);
		int rc = kn_parse_query(exact, len, q);
		int qlen = (rc == KN_OK || rc == KN_ETRAIL || rc == KN_EBADOPT) ? q->qname_len : -1;
		int k1 = kn_cache_key(exact, len, 'E', 1, key, KN_MAX_KEY_LEN);
		int k2 = kn_cache_key(exact, len, 'E', 1, small, 8);
		printf("%d %d %d %d\n", rc, qlen, k1, k2);
		free(exact);
		free(wire);
	}
	free(small);
	free(key);
	free(q);
	fclose(f);
	return 0;
}
