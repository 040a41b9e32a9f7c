/** Version of the coordinator↔shard wire protocol. Bump on any incompatible change to a message. */
export const PROTOCOL_VERSION = 3 as const; // 2: RunningSequence.token may be SAMPLED_LAST_STEP; 3: NewSequence.cached
