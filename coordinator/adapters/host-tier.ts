// The coordinator's mirror of each shard's host-RAM adapter cache (shard/adapters/host-cache.ts): the
// same byte budget and LRU order, fed the same loads in the same order, so the admin API can say which
// evicted adapters are still in host RAM without asking the shards. (Exact for plain adapters; a merge's
// components are also cached by the shards but not mirrored here, so after merges it is an estimate.)
export class HostTierMirror {
  private readonly lru = new Map<string, number>();
  private used = 0;

  constructor(private readonly budget: number) {}

  has(key: string): boolean {
    return this.lru.has(key);
  }

  touch(key: string, bytes: number): void {
    const old = this.lru.get(key);
    if (old !== undefined) {
      this.lru.delete(key);
      this.used -= old;
    }
    if (bytes > this.budget) return;
    for (const [k, b] of this.lru) {
      if (this.used + bytes <= this.budget) break;
      this.lru.delete(k);
      this.used -= b;
    }
    this.lru.set(key, bytes);
    this.used += bytes;
  }

  clear(): void {
    this.lru.clear();
    this.used = 0;
  }
}
