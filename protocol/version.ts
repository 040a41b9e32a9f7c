/** Version of the coordinator↔shard wire protocol. Bump on any incompatible change to a message. */
// 2: RunningSequence.token may be SAMPLED_LAST_STEP; 3: NewSequence.cached; 4: NewSequence.constraint, SeqOutput.error, StepResult.fatal
export const PROTOCOL_VERSION = 4 as const;
