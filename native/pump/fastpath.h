/* The C fast path's pure parts: a strict ClientHello check with SNI/ALPN extraction, and a hostname table. */
#ifndef SNIGATE_FASTPATH_H
#define SNIGATE_FASTPATH_H
#include <stddef.h>
#include <stdint.h>

/* What fp_hello found in a buffer holding one whole ClientHello (offsets into that buffer). */
typedef struct fp_hello {
  char sni[254]; /* normalized: lower case, no trailing dot, NUL-terminated */
  int sni_len;
  size_t alpn_off; /* the ALPN protocol_name_list's bytes (without its 2-byte length); alpn_len 0: none */
  size_t alpn_len;
} fp_hello;

/*
 * 1 when b[0, n) starts with one TLS record holding a whole ClientHello that the JavaScript reader
 * (src/dataplane/clienthello.ts) accepts too, with a server_name: same checks, same normalization. 0 for
 * anything else (fragmented, incomplete, malformed, no SNI): that connection takes the JavaScript path,
 * which decides it with its full reasons. Must never accept what the JavaScript reader rejects.
 */
int fp_hello_parse(const uint8_t *b, size_t n, size_t max_bytes, fp_hello *out);

/* Hostname -> int32 value: exact names and `*.suffix` wildcards (Gateway API precedence), seeded hashing. */
typedef struct fp_hosts fp_hosts;

/* `keys` is `count` NUL-separated lower-case names ('*.x' for wildcards); NULL when out of memory. */
fp_hosts *fp_hosts_new(const char *keys, size_t keys_len, const int32_t *values, uint32_t count);
void fp_hosts_free(fp_hosts *t);
/*
 * The value of the most specific key matching `name` (exact, then the longest wildcard suffix), or `miss`.
 * `exact` (may be NULL): the ordinal of the key when it equals the name, else -1.
 */
int32_t fp_hosts_lookup(const fp_hosts *t, const char *name, size_t len, int32_t miss, int32_t *exact);

#endif
