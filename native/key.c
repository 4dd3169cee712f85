/* key.c - wire name -> lookup format -> exact cache key (CACHE_KEY_DEF).
 *
 * Owns: kn_cache_key(), the C twin of cache/keys.py key_from_wire().
 * Must not: allocate, keep global state, touch Python objects, or read
 * outside qname_wire[0, qname_len) / write outside out[0, outlen).
 * Any change of the key format happens in cache/keys.py first (bump
 * FORMAT_VERSION there) and is mirrored here; tests/property/
 * test_native_keys.py checks byte equality.  CACHE_KEY_DEF
 */
#include "kresd_native.h"

#define KN_MAX_LABELS 128 /* a 255-byte name has at most 127 labels + root */

/* Escaped, lower-cased length of one label (CACHE_KEY_DEF). */
static size_t esc_len(const uint8_t *p, size_t n)
{
	size_t out = n;
	for (size_t i = 0; i < n; i++)
		out += (p[i] <= 0x01);
	return out;
}

int kn_cache_key(const uint8_t *qname_wire, size_t qname_len, uint8_t tag,
		 uint16_t rtype, uint8_t *out, size_t outlen)
{
	size_t starts[KN_MAX_LABELS]; /* offset of each label's length byte */
	size_t nlabels = 0, pos = 0, klen = 0;

	if (qname_wire == NULL || qname_len == 0 || qname_len > KN_QNAME_MAX)
		return KN_EMALF;
	/* pass 1: validate, note labels, compute the key length */
	for (;;) {
		if (pos >= qname_len)
			return KN_EMALF;
		uint8_t c = qname_wire[pos];
		if (c == 0)
			break;
		if (c > 63)
			return KN_EMALF; /* 0x40, 0x80 types and pointers */
		if (c > qname_len - pos - 1)
			return KN_EMALF;
		if (nlabels == KN_MAX_LABELS)
			return KN_EMALF; /* unreachable with qname_len <= 255 */
		starts[nlabels++] = pos;
		klen += esc_len(qname_wire + pos + 1, c) + (nlabels > 1);
		pos += 1 + (size_t)c;
	}
	if (pos + 1 != qname_len)
		return KN_EMALF; /* bytes after the root label */
	klen += 1 + 1 + 2;       /* 0x00, tag, type */
	if (klen > KN_MAX_KEY_LEN)
		return KN_EKEYLEN;
	if (out == NULL || klen > outlen)
		return KN_ENOSPC;

	/* pass 2: labels in reverse order, separated by 0x00 */
	size_t o = 0;
	for (size_t li = nlabels; li-- > 0;) {
		const uint8_t *p = qname_wire + starts[li] + 1;
		size_t n = qname_wire[starts[li]];
		if (li + 1 != nlabels)
			out[o++] = 0x00;
		for (size_t i = 0; i < n; i++) {
			uint8_t c = p[i];
			if (c <= 0x01) {
				out[o++] = 0x01;
				out[o++] = (uint8_t)(c + 1);
			} else {
				out[o++] = (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
			}
		}
	}
	out[o++] = 0x00;
	out[o++] = tag;
	out[o++] = (uint8_t)(rtype >> 8);
	out[o++] = (uint8_t)rtype;
	return (int)o;
}
