// The native vision towers' TypeScript face (kernels/src/model/vision.h, qwen_vision.h): their plans and handles.

/** An image encoder's plan (kernels/src/model/vision.h): a CLIP vision tower and a LLaVA projector, or (tower
 * 'siglip_gemma3') a SigLIP tower and Gemma 3's projector (patch grid average-pooled to poolTokens rows, RMSNorm,
 * bias-free projection; featureLayers, dropCls, projectorAct and projectorBias unused). */
export interface VisionPlanConfig {
  tower?: 'clip_llava' | 'siglip_gemma3' | 'siglip_idefics3';
  /** Gemma 3: mm_tokens_per_image (a square whose side divides the patch grid's). */
  poolTokens?: number;
  /** Idefics3 / SmolVLM ('siglip_idefics3'): the connector's pixel-shuffle factor; its modality_projection is "proj1"
   * (no bias); patch i of a tile takes position row i. */
  scaleFactor?: number;
  hidden: number;
  heads: number;
  intermediate: number;
  /** Encoder layers held and run: the deepest selected hidden state's index. */
  layers: number;
  imageSize: number;
  patchSize: number;
  channels?: number;
  normEps: number;
  act: VisionActivation;
  /** Indices into the hidden states (0: the embeddings after pre_layrnorm; i: after layer i), concatenated in order. */
  featureLayers: number[];
  /** vision_feature_select_strategy 'default': the class row is dropped. */
  dropCls: boolean;
  textHidden: number;
  projectorAct: VisionActivation;
  projectorBias: boolean;
}
export type VisionActivation = 'quick_gelu' | 'gelu' | 'gelu_tanh' | 'relu' | 'silu';

/** LoRA on a vision linear module: target "layers.<l>.{q,k,v,o,fc1,fc2}" or "proj1" / "proj2"; A [rank, in], B [out, rank]. */
export interface VisionLoraPart {
  target: string;
  rank: number;
  scale: number;
  a: Float32Array;
  b: Float32Array;
}

export interface NativeVisionModel {
  expectedSize(name: string): number;
  setWeight(name: string, data: Float32Array): void;
  finalize(): void;
  tokensPerImage(): number;
  /** Throws naming the first part that is no vision module of this plan or does not fit its shape. */
  checkLora(parts: VisionLoraPart[]): void;
  /** pixels [images, channels, imageSize, imageSize] → features [images · tokensPerImage, textHidden], with one
   * adapter's vision LoRA parts (none: the base), on the libuv pool. */
  encode(pixels: Float32Array, images: number, lora?: VisionLoraPart[]): Promise<Float32Array>;
  dispose(): void;
}

/** Qwen2-VL / Qwen2.5-VL's dynamic-resolution vision tower and merger (kernels/src/model/qwen_vision.h). */
export interface QwenVisionPlanConfig {
  /** Qwen2.5-VL: RMSNorm, SwiGLU MLP with biases, window attention outside fullBlocks. Else Qwen2-VL. */
  windowed: boolean;
  hidden: number;
  heads: number;
  intermediate: number;
  depth: number;
  patchSize: number;
  mergeSize: number;
  temporalPatchSize: number;
  channels?: number;
  /** The merger's output: the language model's hidden size. */
  outHidden: number;
  act: VisionActivation;
  /** Qwen2.5-VL: window side in pixels, and the blocks that attend over the whole image. */
  windowSize?: number;
  fullBlocks?: number[];
  /** Qwen3-VL: Qwen2-VL's blocks, a patch bias, learned position embeddings on a square grid of
   * numPositionEmbeddings (interpolated to each image), and deepstack mergers on these blocks' outputs (encode then
   * returns each deepstack set's [tokens, outHidden] after the features). */
  qwen3?: boolean;
  numPositionEmbeddings?: number;
  deepstack?: number[];
  normEps?: number;
  ropeTheta?: number;
}

/** LoRA targets of a Qwen vision tower: "blocks.<l>.{qkv,proj,fc1,fc2,gate,up,down}", "merger.fc1", "merger.fc2". */
export interface NativeQwenVisionModel {
  expectedSize(name: string): number;
  setWeight(name: string, data: Float32Array): void;
  finalize(): void;
  /** Placeholder tokens of an image of this size; throws when a side is not a multiple of patchSize · mergeSize. */
  tokensFor(height: number, width: number): number;
  checkLora(parts: VisionLoraPart[]): void;
  /** One image's pixels [channels, height, width] → features [tokensFor(height, width), outHidden] (Qwen3-VL: then
   * [deepstack.length, tokens, outHidden] deepstack features), on the libuv pool. */
  encode(pixels: Float32Array, height: number, width: number, lora?: VisionLoraPart[]): Promise<Float32Array>;
  dispose(): void;
}

/** Mistral 3's Pixtral vision tower and projector (kernels/src/model/pixtral_vision.h). */
export interface PixtralVisionPlanConfig {
  hidden: number;
  heads: number;
  intermediate: number;
  /** Blocks held and run: the selected hidden state's index (vision_feature_layer). */
  layers: number;
  patchSize: number;
  /** The rotary table's side in pixels: at most imageSize / patchSize patches a side. */
  imageSize: number;
  channels?: number;
  /** spatial_merge_size. */
  mergeSize: number;
  textHidden: number;
  /** The tower's SwiGLU activation (hidden_act). */
  act: VisionActivation;
  projectorAct: VisionActivation;
  projectorBias: boolean;
  ropeTheta?: number;
  /** The projector's RMSNorm epsilon (text_config.rms_norm_eps). */
  normEps?: number;
}

/** LoRA targets of a Pixtral tower: "layers.<l>.{q,k,v,o,gate,up,down}", "merge", "linear_1", "linear_2". */
export interface NativePixtralVisionModel {
  expectedSize(name: string): number;
  setWeight(name: string, data: Float32Array): void;
  finalize(): void;
  /** Feature rows ([IMG] tokens) of an image of this size; throws when a side is not a multiple of patchSize · mergeSize. */
  tokensFor(height: number, width: number): number;
  checkLora(parts: VisionLoraPart[]): void;
  /** One image's pixels [channels, height, width] → features [tokensFor(height, width), textHidden], on the libuv pool. */
  encode(pixels: Float32Array, height: number, width: number, lora?: VisionLoraPart[]): Promise<Float32Array>;
  dispose(): void;
}
