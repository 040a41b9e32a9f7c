/** Version of the coordinator↔shard wire protocol. Bump on any incompatible change to a message. */
export const PROTOCOL_VERSION = 1 as const;
