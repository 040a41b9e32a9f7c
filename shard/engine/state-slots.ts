// A hybrid Mamba model's per-sequence recurrent-state slots (ModelPlanConfig.layerMamba): the executor keeps each
// sequence's conv window and SSM state in the slot the batch names (BatchSeq.stateSlot). A sequence takes the lowest
// free slot when it arrives (its first chunk zeroes the state) and gives it back when it finishes or is preempted (it
// is then recomputed from its tokens, in a fresh slot). Lowest-first keeps the executor's slot table as small as the
// most sequences held at once.
export class StateSlots {
  private readonly bySeq = new Map<string, number>();
  private readonly free: number[] = [];  // ascending
  private next = 0;

  take(seqId: string): number {
    const had = this.bySeq.get(seqId);
    if (had !== undefined) return had;
    const slot = this.free.length > 0 ? this.free.shift()! : this.next++;
    this.bySeq.set(seqId, slot);
    return slot;
  }

  release(seqId: string): void {
    const slot = this.bySeq.get(seqId);
    if (slot === undefined) return;
    this.bySeq.delete(seqId);
    const at = this.free.findIndex((s) => s > slot);
    this.free.splice(at < 0 ? this.free.length : at, 0, slot);
  }

  /** The slot a sequence holds, or undefined. */
  of(seqId: string): number | undefined {
    return this.bySeq.get(seqId);
  }

  clear(): void {
    this.bySeq.clear();
    this.free.length = 0;
    this.next = 0;
  }

  get held(): number {
    return this.bySeq.size;
  }
}
