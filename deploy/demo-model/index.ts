export {
  DEMO_CHAT_TEMPLATE,
  DEMO_CONFIG,
  DEMO_MODEL_NAME,
  DEMO_MODEL_VERSION,
  DEMO_SPECIAL_TOKENS,
  DEMO_TOKEN_IDS,
  DEMO_VOCAB_SIZE,
  demoModelFiles,
  demoModelTensors,
  ensureDemoModel,
} from './build-demo-model.js';
export { demoAdapterConfig, demoAdapterTensors, ensureDemoAdapter } from './build-demo-adapter.js';
export { buildByteLevelTokenizer, trainBpe } from './bpe-trainer.js';
export { encodeSafetensors, writeSafetensors, type SafetensorsDtype, type TensorToWrite } from './write-safetensors.js';
