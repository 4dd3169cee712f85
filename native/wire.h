/* wire.h - big-endian reads and writes of DNS wire fields, shared by the C
 * sources of native/ (not part of the cffi boundary: kresd_native.h is).
 * Owns: rd16/rd32/wr16/wr32. Must not: check bounds (the callers do). */
#ifndef KRESD_WIRE_H
#define KRESD_WIRE_H

#include <stdint.h>

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)rd16(p) << 16) | rd16(p + 2);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)(v >> 16));
	wr16(p + 2, (uint16_t)v);
}

#endif /* KRESD_WIRE_H */
