/** Open-addressing hash tables keyed by strings (or substrings), hashed in JS, keys stored in their slot. */

/*
 * Why not Map<string, V>: when the key looked up is not the very string object that was stored (a name
 * decoded from bytes, a key built again from its parts), a V8 Map lookup at 100k keys took 0.3-1 µs
 * (measured on Node 24; a fresh string costs V8 a hash and string-table work before the probe, and the
 * stored key strings lie scattered over a large heap). Here the hash is computed in JS and each slot is
 * one cache line holding the hash, the length and the key's characters, next to a plain array of values:
 * a hit reads one record and one value, no allocation, no runtime call. Where the same string object is
 * stored and looked up again, Map is faster (it compares pointers), so the translator keeps Map there.
 *
 * The hash is FNV-1a over the code units from the END of the key to its start. Read that way, the hash of
 * every suffix of a name is an intermediate state of the hash of the whole name, so a wildcard lookup can
 * probe all of a name's parent domains (`b.c`, `c` for `a.b.c`) with one pass over its characters.
 */

/** The FNV-1a 32-bit offset basis: the state before any character. */
export const HASH_START = 0x811c9dc5 | 0;

/** One FNV-1a step (× 16777619 written as shifts: the pure modules may not use Math.imul). */
export function hashStep(h: number, c: number): number {
  const x = h ^ c;
  return (x + (x << 1) + (x << 4) + (x << 7) + (x << 8) + (x << 24)) | 0;
}

/** The state after `s[start, end)`, read from end - 1 down to start, starting from `seed`. */
export function hashRange(seed: number, s: string, start: number, end: number): number {
  let h = seed;
  for (let i = end - 1; i >= start; i--) h = hashStep(h, s.charCodeAt(i));
  return h;
}

/** A hashRange state made fit for indexing a table by its low bits (no tag). */
export function hashFinish(state: number): number {
  return finish(state, 0);
}

/** FNV's low bits are weak and the slot index is taken from them: spread the high bits down, then the tag. */
function finish(h: number, tag: number): number {
  let x = h ^ (tag * 0x5bd1e995);
  x ^= x >>> 16;
  x = (x + (x << 3)) | 0;
  x ^= x >>> 11;
  x = (x + (x << 15)) | 0;
  return x ^ (x >>> 13);
}

/**
 * One slot is one 64-byte record (one cache line: large ArrayBuffers are page-aligned): 16 ints = the
 * finished hash, length * 2 + tag + 1 (0 = empty), the offset of the key in #overflow (-1 when the key is
 * in the record), one spare int, then up to 48 key bytes. The value of a slot sits at the same index of a
 * plain array, so a lookup that hits on its first probe waits for one record and one array element,
 * fetched in parallel. 64 bytes per slot at most half full: about 130-260 bytes per key, off the JS heap.
 */
const REC = 16;
const HEAD_BYTES = 16;
/** Keys up to this many code units, all below 256 (every hostname), live in their record as Latin-1. */
const INLINE = 48;

/**
 * Keys to values, where a key is a range of a string plus a tag (0 or 1): the same characters with
 * different tags are different keys (exact names and wildcard suffixes in one table). Keys are never
 * removed. Linear probing, at most half full.
 */
export class StringTable<V> {
  readonly #seed: number;
  #ints: Int32Array;
  #bytes: Uint8Array;
  #values: (V | undefined)[];
  #mask: number;
  /** Keys that do not fit a record (longer than INLINE, or with a code unit above 255), as UTF-16. */
  #overflow = new Uint16Array(0);
  #used = 0;
  #count = 0;
  /** Per key length: bit 0 set when a key of tag 0 has that length, bit 1 for tag 1 (skips hopeless probes). */
  #lengths = new Uint8Array(64);

  /**
   * `seed` replaces the FNV offset basis. The data plane passes a random one, so nobody can precompute
   * hostnames that collide; the translator keeps the default and stays deterministic (its output never
   * depends on slot positions).
   */
  constructor(seed: number = HASH_START, capacity = 8) {
    this.#seed = seed | 0;
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    const buffer = new ArrayBuffer(slots * REC * 4);
    this.#ints = new Int32Array(buffer);
    this.#bytes = new Uint8Array(buffer);
    this.#values = new Array<V | undefined>(slots).fill(undefined);
    this.#mask = slots - 1;
  }

  get seed(): number {
    return this.#seed;
  }

  get size(): number {
    return this.#count;
  }

  /** Could a key of this length and tag exist? (Cheap pre-check before hashing or probing.) */
  mayHaveLength(length: number, tag = 0): boolean {
    return length < this.#lengths.length && (this.#lengths[length]! & (tag + 1)) !== 0;
  }

  /** The value of `s[start, end)` with `tag`, or undefined. */
  get(s: string, tag = 0, start = 0, end: number = s.length): V | undefined {
    return this.getHashed(s, start, end, tag, hashRange(this.#seed, s, start, end));
  }

  /** get() with the range's hash state already computed (hashRange from `seed`), e.g. within a longer name. */
  getHashed(s: string, start: number, end: number, tag: number, state: number): V | undefined {
    const h = finish(state, tag);
    const lenTag = (end - start) * 2 + tag + 1;
    const ints = this.#ints;
    const values = this.#values;
    const mask = this.#mask;
    let i = h & mask;
    for (;;) {
      // Read before the record is checked, so that both memory accesses are under way together.
      const value = values[i];
      const at = i * REC;
      const lt = ints[at + 1]!;
      if (lt === 0) return undefined;
      if (lt === lenTag && ints[at] === h && this.#same(at, s, start, end)) return value;
      i = (i + 1) & mask;
    }
  }

  has(s: string, tag = 0, start = 0, end: number = s.length): boolean {
    return this.#slot(s, start, end, tag, finish(hashRange(this.#seed, s, start, end), tag)) >= 0;
  }

  /** Adds the key with `value` unless it is there already (the first value stays); true when added. */
  add(s: string, value: V, tag = 0, start = 0, end: number = s.length): boolean {
    const h = finish(hashRange(this.#seed, s, start, end), tag);
    const slot = this.#slot(s, start, end, tag, h);
    if (slot >= 0) return false;
    this.#insert(-1 - slot, s, start, end, tag, h, value);
    return true;
  }

  /** Adds the key, or replaces its value (Map.set). */
  set(s: string, value: V, tag = 0, start = 0, end: number = s.length): void {
    const h = finish(hashRange(this.#seed, s, start, end), tag);
    const slot = this.#slot(s, start, end, tag, h);
    if (slot >= 0) this.#values[slot] = value;
    else this.#insert(-1 - slot, s, start, end, tag, h, value);
  }

  /** The slot holding the key, or -1 - the empty slot where it would go. */
  #slot(s: string, start: number, end: number, tag: number, h: number): number {
    const lenTag = (end - start) * 2 + tag + 1;
    const ints = this.#ints;
    let i = h & this.#mask;
    for (;;) {
      const at = i * REC;
      const lt = ints[at + 1]!;
      if (lt === 0) return -1 - i;
      if (lt === lenTag && ints[at] === h && this.#same(at, s, start, end)) return i;
      i = (i + 1) & this.#mask;
    }
  }

  #same(at: number, s: string, start: number, end: number): boolean {
    const offset = this.#ints[at + 2]!;
    if (offset < 0) {
      // A code unit above 255 in `s` can never equal a stored byte: such keys are never inline.
      const bytes = this.#bytes;
      for (let i = start, j = at * 4 + HEAD_BYTES; i < end; i++, j++)
        if (bytes[j] !== s.charCodeAt(i)) return false;
      return true;
    }
    const chars = this.#overflow;
    for (let i = start, j = offset; i < end; i++, j++) if (chars[j] !== s.charCodeAt(i)) return false;
    return true;
  }

  #insert(i: number, s: string, start: number, end: number, tag: number, h: number, value: V): void {
    const len = end - start;
    const at = i * REC;
    this.#ints[at] = h;
    this.#ints[at + 1] = len * 2 + tag + 1;
    let inline = len <= INLINE;
    for (let k = start; inline && k < end; k++) if (s.charCodeAt(k) > 255) inline = false;
    if (inline) {
      this.#ints[at + 2] = -1;
      const bytes = this.#bytes;
      for (let k = start, j = at * 4 + HEAD_BYTES; k < end; k++, j++) bytes[j] = s.charCodeAt(k);
    } else {
      this.#ints[at + 2] = this.#store(s, start, end);
    }
    this.#values[i] = value;
    this.#count++;
    this.#noteLength(len, tag);
    if (this.#count * 2 > this.#mask + 1) this.#grow();
  }

  #store(s: string, start: number, end: number): number {
    const len = end - start;
    if (this.#used + len > this.#overflow.length) {
      let size = this.#overflow.length * 2 || 64;
      while (size < this.#used + len) size *= 2;
      const bigger = new Uint16Array(size);
      bigger.set(this.#overflow.subarray(0, this.#used));
      this.#overflow = bigger;
    }
    const offset = this.#used;
    const chars = this.#overflow;
    for (let i = start, j = offset; i < end; i++, j++) chars[j] = s.charCodeAt(i);
    this.#used += len;
    return offset;
  }

  #noteLength(len: number, tag: number): void {
    if (len >= this.#lengths.length) {
      let size = this.#lengths.length * 2;
      while (size <= len) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.#lengths);
      this.#lengths = bigger;
    }
    this.#lengths[len] = this.#lengths[len]! | (tag + 1);
  }

  /** Doubles the slots; the stored hashes are reused, no key is hashed again. */
  #grow(): void {
    const oldInts = this.#ints;
    const oldValues = this.#values;
    const slots = (this.#mask + 1) * 2;
    const mask = slots - 1;
    const buffer = new ArrayBuffer(slots * REC * 4);
    const ints = new Int32Array(buffer);
    const values = new Array<V | undefined>(slots).fill(undefined);
    for (let from = 0; from < oldValues.length; from++) {
      const at = from * REC;
      if (oldInts[at + 1] === 0) continue;
      let i = oldInts[at]! & mask;
      while (ints[i * REC + 1] !== 0) i = (i + 1) & mask;
      const to = i * REC;
      for (let k = 0; k < REC; k++) ints[to + k] = oldInts[at + k]!;
      values[i] = oldValues[from];
    }
    this.#ints = ints;
    this.#bytes = new Uint8Array(buffer);
    this.#values = values;
    this.#mask = mask;
  }
}

/** The part of Map<string, V> the translator uses, over a StringTable. */
export class StringMap<V> {
  readonly #table = new StringTable<V>();

  get size(): number {
    return this.#table.size;
  }

  get(key: string): V | undefined {
    return this.#table.get(key);
  }

  has(key: string): boolean {
    return this.#table.has(key);
  }

  set(key: string, value: V): this {
    this.#table.set(key, value);
    return this;
  }
}

/**
 * Values by (namespace, name), as a Map keyed `namespace/name` would hold them (Kubernetes names have no
 * `/`), but looked up without building that key: no allocation, and the short parts hash quickly.
 */
export class NameIndex<V> {
  readonly #byNamespace = new StringMap<StringMap<V>>();

  get(namespace: string, name: string): V | undefined {
    return this.#byNamespace.get(namespace)?.get(name);
  }

  /** Replaces an earlier value, like Map.set. */
  set(namespace: string, name: string, value: V): void {
    let names = this.#byNamespace.get(namespace);
    if (names === undefined) this.#byNamespace.set(namespace, (names = new StringMap()));
    names.set(name, value);
  }
}
