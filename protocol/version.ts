/** Version of the coordinator↔shard wire protocol. Bump on any incompatible change to a message. */
// 2: RunningSequence.token may be SAMPLED_LAST_STEP; 3: NewSequence.cached; 4: NewSequence.constraint, SeqOutput.error, StepResult.fatal;
// 5: NewSequence.pooling (a shard of v4 would return the last position's state for a mean-pooled embedding);
// 6: SamplingParams.prediction (a shard of v5 refuses the field); 7: NewSequence.images, image.data, ModelInfo.vision
export const PROTOCOL_VERSION = 7 as const;
