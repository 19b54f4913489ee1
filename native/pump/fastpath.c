/*
 * The C fast path's pure parts (no I/O, no Node-API): the strict ClientHello check that mirrors
 * src/dataplane/clienthello.ts (whole-record case only) and the hostname table that mirrors HostMatcher.
 */
#include "fastpath.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_RECORD_LENGTH (16384 + 2048)

static uint32_t rd16(const uint8_t *b) { return ((uint32_t)b[0] << 8) | b[1]; }

/* normalizeSniAt: RFC 1123 LDH labels, one trailing dot dropped, not an IPv4 literal; lower-cased into out. */
static int normalize_sni(const uint8_t *raw, size_t n, char *out) {
  if (n == 0 || n > 254) return -1;
  if (raw[n - 1] == '.') n--;
  if (n == 0 || n > 253) return -1;
  int label = 0, dash_last = 0, digits_only = 1;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = raw[i];
    if (c == '.') {
      if (label == 0 || dash_last) return -1;
      label = 0;
      digits_only = 1;
      out[i] = '.';
      continue;
    }
    if (c >= 'A' && c <= 'Z') c |= 0x20;
    int digit = c >= '0' && c <= '9';
    if (c == '-') {
      if (label == 0) return -1;
    } else if (!digit && (c < 'a' || c > 'z'))
      return -1;
    if (++label > 63) return -1;
    dash_last = c == '-';
    if (!digit) digits_only = 0;
    out[i] = (char)c;
  }
  if (dash_last || digits_only) return -1;
  out[n] = '\0';
  return (int)n;
}

/* parseServerName: exactly one valid host_name entry (other name types skipped). */
static int server_name(const uint8_t *b, size_t p, size_t e, fp_hello *out) {
  if (e - p < 2) return 0;
  size_t len = rd16(b + p);
  p += 2;
  if (len != e - p || len == 0) return 0;
  int found = 0;
  while (p < e) {
    uint8_t type = b[p++];
    if (e - p < 2) return 0;
    size_t n = rd16(b + p);
    p += 2;
    if (e - p < n) return 0;
    size_t at = p;
    p += n;
    if (type != 0) continue;
    if (found) return 0;
    int l = normalize_sni(b + at, n, out->sni);
    if (l < 0) return 0;
    out->sni_len = l;
    found = 1;
  }
  return found;
}

static int alpn(const uint8_t *b, size_t p, size_t e, fp_hello *out) {
  if (e - p < 2) return 0;
  size_t len = rd16(b + p);
  p += 2;
  if (len != e - p || len == 0) return 0;
  for (size_t q = p; q < e;) {
    size_t n = b[q++];
    if (e - q < n || n == 0) return 0;
    q += n;
  }
  out->alpn_off = p;
  out->alpn_len = len;
  return 1;
}

static int supported_versions(const uint8_t *b, size_t p, size_t e) {
  if (e - p < 1) return 0;
  size_t len = b[p++];
  return len == e - p && len >= 2 && len % 2 == 0;
}

/* Duplicate extensions by stamp, as the JavaScript reader does (a list search is quadratic). */
static uint32_t seen[65536];
static uint32_t stamp;

static int parse_body(const uint8_t *b, size_t p, size_t e, fp_hello *out) {
  if (e - p < 2) return 0;
  if (b[p] != 3) return 0;
  p += 2;
  if (e - p < 32) return 0;
  p += 32;
  if (p >= e) return 0;
  size_t len = b[p++];
  if (e - p < len || len > 32) return 0;
  p += len;
  if (e - p < 2) return 0;
  len = rd16(b + p);
  p += 2;
  if (e - p < len || len < 2 || len % 2 != 0) return 0;
  p += len;
  if (p >= e) return 0;
  len = b[p++];
  if (e - p < len || len < 1) return 0;
  p += len;
  /* No extensions: no SNI, which the fast path leaves to JavaScript anyway. */
  if (e - p < 2) return 0;
  len = rd16(b + p);
  p += 2;
  if (e - p != len) return 0;
  if (stamp == 0xffffffffu) {
    memset(seen, 0, sizeof seen);
    stamp = 0;
  }
  uint32_t mark = ++stamp;
  int sni = 0;
  while (p < e) {
    if (e - p < 4) return 0;
    uint32_t type = rd16(b + p);
    size_t dl = rd16(b + p + 2);
    p += 4;
    if (e - p < dl) return 0;
    size_t de = p + dl;
    if (seen[type] == mark) return 0;
    seen[type] = mark;
    if (type == 0) {
      if (!server_name(b, p, de, out)) return 0;
      sni = 1;
    } else if (type == 16) {
      if (!alpn(b, p, de, out)) return 0;
    } else if (type == 43) {
      if (!supported_versions(b, p, de)) return 0;
    }
    p = de;
  }
  return sni;
}

int fp_hello_parse(const uint8_t *b, size_t n, size_t max_bytes, fp_hello *out) {
  out->sni_len = 0;
  out->alpn_off = out->alpn_len = 0;
  if (n < 9) return 0;
  if (b[0] != 0x16 || b[1] != 3 || b[2] > 4) return 0;
  size_t rec = rd16(b + 3);
  if (rec == 0 || rec > MAX_RECORD_LENGTH || b[5] != 1) return 0;
  size_t len = ((size_t)b[6] << 16) | ((size_t)b[7] << 8) | b[8];
  size_t end = 9 + len;
  if (len + 4 > rec || len + 4 > max_bytes || n < end) return 0;
  return parse_body(b, 9, end, out);
}

/* ---- Hostname table: open addressing over (hash, name) with a per-process random seed ---- */

typedef struct slot {
  uint32_t hash;
  uint32_t len; /* 0: empty */
  const char *name;
  int32_t value;
  int32_t ordinal; /* position among the keys given */
} slot;

struct fp_hosts {
  slot *slots;
  uint32_t mask;
  char *names;      /* owns the key bytes */
  uint8_t lens[256]; /* 1 when some key has this length (skips probes for lengths nobody has) */
  int wildcards;
};

static uint32_t g_seed;

static uint32_t hash_bytes(const char *s, size_t n) {
  uint32_t h = 2166136261u ^ g_seed;
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)s[i];
    h *= 16777619u;
  }
  h ^= h >> 15;
  h *= 0x2c1b3c6du;
  h ^= h >> 12;
  return h;
}

static slot *find(const fp_hosts *t, const char *s, size_t n, uint32_t h) {
  for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
    slot *sl = &t->slots[i];
    if (sl->len == 0) return sl;
    if (sl->hash == h && sl->len == n && memcmp(sl->name, s, n) == 0) return sl;
  }
}

fp_hosts *fp_hosts_new(const char *keys, size_t keys_len, const int32_t *values, uint32_t count) {
  if (g_seed == 0 && getrandom(&g_seed, sizeof g_seed, 0) != sizeof g_seed) g_seed = 0x9e3779b9u;
  fp_hosts *t = (fp_hosts *)calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  uint32_t cap = 8;
  while (cap < count * 2 + 2) cap <<= 1;
  t->slots = (slot *)calloc(cap, sizeof(slot));
  t->names = (char *)malloc(keys_len + 1);
  if (t->slots == NULL || t->names == NULL) {
    fp_hosts_free(t);
    return NULL;
  }
  t->mask = cap - 1;
  memcpy(t->names, keys, keys_len);
  t->names[keys_len] = '\0';
  const char *s = t->names;
  const char *end = t->names + keys_len;
  for (uint32_t k = 0; k < count && s < end; k++) {
    size_t n = strnlen(s, (size_t)(end - s));
    if (n > 0 && n < 256) {
      uint32_t h = hash_bytes(s, n);
      slot *sl = find(t, s, n, h);
      /* First insertion wins, as in HostMatcher (inputs come most specific first, duplicates resolved). */
      if (sl->len == 0) {
        sl->hash = h;
        sl->len = (uint32_t)n;
        sl->name = s;
        sl->value = values[k];
        sl->ordinal = (int32_t)k;
        t->lens[n] = 1;
        if (n > 2 && s[0] == '*' && s[1] == '.') t->wildcards = 1;
      }
    }
    s += n + 1;
  }
  return t;
}

void fp_hosts_free(fp_hosts *t) {
  if (t == NULL) return;
  free(t->slots);
  free(t->names);
  free(t);
}

int32_t fp_hosts_lookup(const fp_hosts *t, const char *name, size_t len, int32_t miss, int32_t *exact) {
  if (exact != NULL) *exact = -1;
  if (len == 0 || len > 253) return miss;
  if (t->lens[len]) {
    slot *sl = find(t, name, len, hash_bytes(name, len));
    if (sl->len != 0) {
      if (exact != NULL) *exact = sl->ordinal;
      return sl->value;
    }
  }
  if (!t->wildcards) return miss;
  /* `*.suffix` for each label boundary, longest suffix first; the candidate is built in place. */
  char buf[256];
  for (size_t i = 0; i < len; i++) {
    if (name[i] != '.' || i + 1 >= len) continue;
    size_t n = len - i + 1; /* "*" + "." + suffix */
    if (n >= 256 || !t->lens[n]) continue;
    buf[0] = '*';
    memcpy(buf + 1, name + i, len - i);
    slot *sl = find(t, buf, n, hash_bytes(buf, n));
    if (sl->len != 0) return sl->value;
  }
  return miss;
}
