// Weight file formats: safetensors (models and adapters) and PyTorch zip checkpoints (adapter_model.bin).
export {
  type DType,
  type FloatDType,
  DTYPE_SIZE,
  bf16ToF32,
  decodeFloats,
  useBulkHalfDecoder,
  type HalfDecoder,
  encodeFloats,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  FLOAT_DTYPES,
  numel,
} from './dtype.js';
export { FP8_TABLES, type Fp8DType } from './fp8.js';
export {
  SafetensorsError,
  SafetensorsFile,
  WeightStore,
  writeSafetensors,
  type OpenOptions,
  type Slice,
  type TensorInfo,
  type TensorSource,
  type TensorToWrite,
} from './safetensors.js';
export { ALLOWED_TORCH_GLOBALS, TorchBinError, loadTorchBin, type TorchBinTensor } from './torch-bin.js';
export { PickleError, UnsafePickleError } from './pickle-vm.js';
export { ZipError } from './zip-reader.js';
