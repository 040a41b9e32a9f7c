// PEFT LoRA adapters: config parsing, per-module scaling, tensor keys, directory loading.
export {
  AdapterConfigError,
  loadAdapterDir,
  loraScaleFor,
  parseLoraConfig,
  parseLoraTensorKey,
  type LoadedAdapter,
  type LoraConfig,
} from './peft-config.js';
export { HostAdapterCache, adapterBytes, cachedBytes, dirIdentity, type HostEntry } from './host-cache.js';
